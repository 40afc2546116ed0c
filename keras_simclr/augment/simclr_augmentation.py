import keras

from keras_simclr.augment import image_utils
from keras_simclr.augment.random_color_distortion import RandomColorDistortion
from keras_simclr.augment.random_gaussian_blur import RandomGaussianBlur
from keras_simclr.augment.random_resized_crop import RandomResizedCrop

# crop scale, color strength, blur probability (None: no blur)
PRESETS = {
    # SimCLR on ImageNet: crop 0.08-1, flip, color strength 1.0, blur p=0.5.
    "imagenet": {"scale": (0.08, 1.0), "strength": 1.0, "blur": 0.5},
    # SimCLR on CIFAR-10 (appendix B.9): no blur, color strength 0.5.
    "cifar": {"scale": (0.08, 1.0), "strength": 0.5, "blur": None},
    # MoCo v2: crop 0.2-1, ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8 (strength
    # 0.5 in SimCLR's parametrization), grayscale p=0.2, blur p=0.5.
    "moco_v2": {"scale": (0.2, 1.0), "strength": 0.5, "blur": 0.5},
}


@keras.saving.register_keras_serializable(package="keras_simclr")
class SimCLRAugmentation(keras.layers.Layer):
    """The SimCLR view pipeline: one random view of every image.

    Random resized crop with horizontal flip, color distortion (jitter with
    p=0.8 in random order, then grayscale with p=0.2) and, where the preset
    has it, Gaussian blur. Call it twice (or on `[x, x]`) for two views; every
    random choice is drawn per image.

    Presets:
    - `"imagenet"`: crop area 0.08-1, aspect 3/4-4/3, flip, color strength
      1.0, blur p=0.5.
    - `"cifar"`: crop, flip, color strength 0.5, no blur.
    - `"moco_v2"`: crop area 0.2-1, flip, color strength 0.5 (= MoCo's
      ColorJitter(0.4, 0.4, 0.4, 0.1)), grayscale p=0.2, blur p=0.5.

    Args:
        image_size: output side (int) or `(height, width)`.
        preset: `"cifar"`, `"imagenet"` or `"moco_v2"`.
        brightness: `"multiplicative"` (SimCLR v2, default) or `"additive"`
            (SimCLR v1).
        seed: integer seed; each sub-layer gets its own seed from it.
        **kwargs: forwarded to `keras.layers.Layer`.

    Inputs are uint8 images or floats in [0, 1], `(batch, H, W, 3)` or
    `(H, W, 3)`; outputs float32 in [0, 1] at `image_size`. With
    `training=False` it only resizes (no randomness).

    Example:

    ```python
    augment = SimCLRAugmentation(32, preset="cifar", seed=0)
    view_a, view_b = augment(images), augment(images)
    ```

    References:
        - Chen et al., SimCLR, 2020, appendix A and B.9.
        - Chen et al., Improved Baselines with Momentum Contrastive Learning
          (MoCo v2), 2020.
    """

    def __init__(
        self, image_size, preset="cifar", brightness="multiplicative", seed=None, **kwargs
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if preset not in PRESETS:
            raise ValueError(
                f"Unknown augmentation preset; known presets: {sorted(PRESETS)}. "
                f"Received: preset={preset!r}"
            )
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(int(v) for v in image_size)
        self.preset = preset
        self.brightness = brightness
        self.seed = seed
        settings = PRESETS[preset]

        def sub_seed(offset):
            return None if seed is None else seed + offset

        self.crop = RandomResizedCrop(
            *self.image_size,
            scale=settings["scale"],
            horizontal_flip=True,
            seed=sub_seed(0),
            dtype=self.dtype_policy,
            name="crop",
        )
        self.color = RandomColorDistortion(
            strength=settings["strength"],
            brightness=brightness,
            seed=sub_seed(1),
            dtype=self.dtype_policy,
            name="color",
        )
        self.blur = (
            RandomGaussianBlur(
                probability=settings["blur"],
                seed=sub_seed(2),
                dtype=self.dtype_policy,
                name="blur",
            )
            if settings["blur"]
            else None
        )

    def build(self, input_shape):
        for layer in (self.crop, self.color, self.blur):
            if layer is not None:
                layer.build(input_shape)
        self.built = True

    def call(self, images, training=True):
        images, unbatched = image_utils.to_batched_float(
            images, self.__class__.__name__
        )
        images = self.crop(images, training=training)
        images = self.color(images, training=training)
        if self.blur is not None:
            images = self.blur(images, training=training)
        return images[0] if unbatched else images

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + self.image_size + (3,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "preset": self.preset,
                "brightness": self.brightness,
                "seed": self.seed,
            }
        )
        return config
