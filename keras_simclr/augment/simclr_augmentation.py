import keras

from keras_simclr.augment import image_utils
from keras_simclr.augment.random_color_distortion import RandomColorDistortion
from keras_simclr.augment.random_gaussian_blur import RandomGaussianBlur
from keras_simclr.augment.random_resized_crop import RandomResizedCrop

# Crop area range, color strength, blur probability (None: no blur). All
# presets: aspect ratio 3/4-4/3, horizontal flip, color jitter p=0.8 in
# random order, grayscale p=0.2.
PRESETS = {
    # SimCLR on ImageNet (appendix A).
    "imagenet": {"scale": (0.08, 1.0), "strength": 1.0, "blur": 0.5},
    # SimCLR on CIFAR-10 (appendix B.9): color strength 0.5, no blur.
    "cifar": {"scale": (0.08, 1.0), "strength": 0.5, "blur": None},
    # MoCo v2: RandomResizedCrop(scale=(0.2, 1)), ColorJitter(0.4, 0.4, 0.4,
    # 0.1) with p=0.8 (strength 0.5 in SimCLR's parametrization), grayscale
    # p=0.2, blur p=0.5.
    "moco_v2": {"scale": (0.2, 1.0), "strength": 0.5, "blur": 0.5},
}


@keras.saving.register_keras_serializable(package="keras_simclr")
class SimCLRAugmentation(keras.layers.Layer):
    """The SimCLR (or MoCo v2) view pipeline: one random view of every image.

    Random resized crop with horizontal flip, then color distortion (color
    jitter with p=0.8 in a random order per image, then grayscale with
    p=0.2), then, where the preset has it, Gaussian blur. Call it twice (or
    once on the batch concatenated with itself) for two views; every random
    choice is drawn per image.

    Presets:
    - `"imagenet"` (SimCLR): crop area 0.08-1, aspect 3/4-4/3, flip, color
      strength 1.0, blur with p=0.5.
    - `"cifar"` (SimCLR CIFAR-10): crop area 0.08-1, aspect 3/4-4/3, flip,
      color strength 0.5, no blur.
    - `"moco_v2"`: crop area 0.2-1, aspect 3/4-4/3, flip, color strength 0.5
      (= MoCo's `ColorJitter(0.4, 0.4, 0.4, 0.1)`), grayscale p=0.2, blur
      with p=0.5.

    Inputs are integer images (uint8, 0-255) or floats in [0, 1], shape
    `(batch, H, W, 3)` or `(H, W, 3)`; outputs are float32 in [0, 1] at
    `image_size`. With `training=False` images are only resized to
    `image_size` (no randomness).

    Args:
        image_size: output side (int) or `(height, width)`.
        preset: `"cifar"`, `"imagenet"` or `"moco_v2"`.
        brightness: `"multiplicative"` (SimCLR v2) or `"additive"` (SimCLR
            v1); `None` (default) means multiplicative for every preset.
        seed: integer seed; the crop, color and blur layers are seeded with
            `seed`, `seed + 1` and `seed + 2`.
        **kwargs: forwarded to `keras.layers.Layer` (the `dtype` defaults to
            `"float32"` so that a mixed-precision policy does not make the
            augmentation run in half precision).

    Example:

    ```python
    augment = SimCLRAugmentation(32, preset="cifar", seed=0)
    view_a, view_b = augment(uint8_images), augment(uint8_images)

    # In tf.data (TensorFlow backend), on batches; compiling the map
    # function with XLA makes it several times faster on CPU.
    views = tf.function(lambda x: (augment(x), augment(x)), jit_compile=True)
    dataset = dataset.batch(256).map(views, num_parallel_calls=tf.data.AUTOTUNE)
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations (SimCLR), ICML 2020, appendix A and B.9.
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020.
        - Chen et al., Improved Baselines with Momentum Contrastive Learning
          (MoCo v2), 2020.
    """

    def __init__(self, image_size, preset="cifar", brightness=None, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if preset not in PRESETS:
            raise ValueError(
                f"Unknown augmentation preset; known presets: {sorted(PRESETS)}. "
                f"Received: preset={preset!r}"
            )
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        try:
            image_size = tuple(int(v) for v in image_size)
        except (TypeError, ValueError):
            image_size = None
        if image_size is None or len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(
                "`image_size` must be a positive int or (height, width). "
                f"Received: image_size={image_size}"
            )
        self.image_size = image_size
        self.preset = preset
        self.brightness = "multiplicative" if brightness is None else brightness
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
            brightness=self.brightness,
            seed=sub_seed(1),
            dtype=self.dtype_policy,
            name="color",
        )
        self.blur = None
        if settings["blur"]:
            self.blur = RandomGaussianBlur(
                probability=settings["blur"],
                seed=sub_seed(2),
                dtype=self.dtype_policy,
                name="blur",
            )

    def build(self, input_shape):
        self.crop.build(input_shape)
        output_shape = self.crop.compute_output_shape(input_shape)
        self.color.build(output_shape)
        if self.blur is not None:
            self.blur.build(output_shape)
        self.built = True

    def call(self, images, training=True):
        images, unbatched = image_utils.to_batched_float(images, self.__class__.__name__)
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
