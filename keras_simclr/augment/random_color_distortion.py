import keras
from keras import ops

from keras_simclr.augment import image_utils

# tf.image.rgb_to_grayscale weights (ITU-R 601).
_GRAY = (0.2989, 0.5870, 0.1140)
_BRIGHTNESS_MODES = ("multiplicative", "additive")


def _per_image(values):
    return ops.reshape(values, (-1, 1, 1, 1))


def grayscale(images):
    """RGB -> gray, kept as 3 equal channels."""
    gray = ops.sum(images * ops.convert_to_tensor(_GRAY, "float32"), axis=-1, keepdims=True)
    return ops.repeat(gray, 3, axis=-1)


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomColorDistortion(keras.layers.Layer):
    """SimCLR's color distortion: color jitter in random order, then grayscale.

    Per image, with probability `jitter_probability`, four operations are
    applied in an order drawn per image, each followed by clipping to [0, 1]
    as in google-research/simclr:

    - brightness: `x * f`, `f ~ U[max(0, 1 - 0.8s), 1 + 0.8s]` (SimCLR v2,
      `"multiplicative"`), or `x + d`, `d ~ U[-0.8s, 0.8s]` (SimCLR v1,
      `"additive"`, as `tf.image.random_brightness`);
    - contrast: `(x - mean) * f + mean`, per-channel image mean,
      `f ~ U[max(0, 1 - 0.8s), 1 + 0.8s]` (`tf.image.adjust_contrast`);
    - saturation: HSV saturation times `f ~ U[max(0, 1 - 0.8s), 1 + 0.8s]`
      (`tf.image.adjust_saturation`);
    - hue: HSV hue shifted by `d ~ U[-0.2s, 0.2s]`, wrapping around
      (`tf.image.adjust_hue`);

    where `s` is `strength`. Then, per image with probability
    `grayscale_probability`, the image becomes gray (3 equal channels).

    A per-image random order is computed with static shapes: at each of the
    four steps every operation is evaluated and each image keeps the one its
    order names (16 cheap elementwise evaluations instead of 4). With
    `random_order=False` the order is brightness, contrast, saturation, hue.

    Inputs are uint8 (scaled to [0, 1]) or floats in [0, 1], shape
    `(batch, H, W, 3)` or `(H, W, 3)`; outputs are float32 in [0, 1]. With
    `training=False` the layer returns its input unchanged (as float32).

    Args:
        strength: color distortion strength `s` (SimCLR: 1.0 on ImageNet,
            0.5 on CIFAR).
        brightness: `"multiplicative"` (SimCLR v2, the default) or
            `"additive"` (SimCLR v1).
        jitter_probability: probability of the color jitter per image.
        grayscale_probability: probability of grayscale per image.
        random_order: draw the order of the four jitter operations per image.
        seed: integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    ```python
    distort = RandomColorDistortion(strength=0.5, seed=0)
    views = distort(images)
    ```

    References:
        - Chen et al., SimCLR, 2020, appendix A (color distortion code).
        - Chen et al., SimCLR v2, 2020 (multiplicative brightness).
    """

    def __init__(
        self,
        strength=1.0,
        brightness="multiplicative",
        jitter_probability=0.8,
        grayscale_probability=0.2,
        random_order=True,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not strength >= 0:
            raise ValueError(
                f"`strength` must be >= 0. Received: strength={strength}"
            )
        if brightness not in _BRIGHTNESS_MODES:
            raise ValueError(
                f"`brightness` must be one of {_BRIGHTNESS_MODES}. "
                f"Received: brightness={brightness!r}"
            )
        for name, value in (
            ("jitter_probability", jitter_probability),
            ("grayscale_probability", grayscale_probability),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"`{name}` must be in [0, 1]. Received: {name}={value}"
                )
        self.strength = float(strength)
        self.brightness = brightness
        self.jitter_probability = float(jitter_probability)
        self.grayscale_probability = float(grayscale_probability)
        self.random_order = random_order
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, images, training=True, seed=None):
        """Draws every parameter per image.

        Returns:
            dict of (batch,) tensors `brightness`, `contrast`, `saturation`,
            `hue`, `jitter` (bool), `grayscale` (bool), and `order`
            (batch, 4) int32: the operation applied at each step.
        """
        seed = seed if seed is not None else self.seed_generator
        batch = ops.shape(images)[0]
        s = self.strength
        low = max(0.0, 1.0 - 0.8 * s)
        if self.brightness == "multiplicative":
            brightness = image_utils.uniform((batch,), low, 1.0 + 0.8 * s, seed)
        else:
            brightness = image_utils.uniform((batch,), -0.8 * s, 0.8 * s, seed)
        transformation = {
            "brightness": brightness,
            "contrast": image_utils.uniform((batch,), low, 1.0 + 0.8 * s, seed),
            "saturation": image_utils.uniform((batch,), low, 1.0 + 0.8 * s, seed),
            "hue": image_utils.uniform((batch,), -0.2 * s, 0.2 * s, seed),
            "jitter": image_utils.bernoulli((batch,), self.jitter_probability, seed),
            "grayscale": image_utils.bernoulli(
                (batch,), self.grayscale_probability, seed
            ),
        }
        if self.random_order:
            noise = keras.random.uniform((batch, 4), seed=seed)
            transformation["order"] = ops.cast(ops.argsort(noise, axis=-1), "int32")
        else:
            transformation["order"] = ops.broadcast_to(
                ops.arange(4, dtype="int32"), (batch, 4)
            )
        return transformation

    def _adjust_brightness(self, images, value):
        if self.brightness == "multiplicative":
            return images * _per_image(value)
        return images + _per_image(value)

    @staticmethod
    def _adjust_contrast(images, factor):
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        return (images - mean) * _per_image(factor) + mean

    @staticmethod
    def _adjust_saturation(images, factor):
        hsv = ops.image.rgb_to_hsv(images)
        h, s, v = ops.split(hsv, 3, axis=-1)
        s = ops.clip(s * _per_image(factor), 0.0, 1.0)
        return ops.image.hsv_to_rgb(ops.concatenate([h, s, v], axis=-1))

    @staticmethod
    def _adjust_hue(images, delta):
        hsv = ops.image.rgb_to_hsv(images)
        h, s, v = ops.split(hsv, 3, axis=-1)
        h = h + _per_image(delta)
        h = h - ops.floor(h)
        return ops.image.hsv_to_rgb(ops.concatenate([h, s, v], axis=-1))

    def _jitter(self, images, transformation):
        operations = (
            lambda x: self._adjust_brightness(x, transformation["brightness"]),
            lambda x: self._adjust_contrast(x, transformation["contrast"]),
            lambda x: self._adjust_saturation(x, transformation["saturation"]),
            lambda x: self._adjust_hue(x, transformation["hue"]),
        )
        if not self.random_order:
            for operation in operations:
                images = ops.clip(operation(images), 0.0, 1.0)
            return images
        order = transformation["order"]
        for step in range(4):
            chosen = _per_image(order[:, step])
            candidates = [ops.clip(op(images), 0.0, 1.0) for op in operations]
            result = candidates[0]
            for index in range(1, 4):
                result = ops.where(ops.equal(chosen, index), candidates[index], result)
            images = result
        return images

    def transform_images(self, images, transformation, training=True):
        """Applies the drawn jitter and grayscale to batched float32 images."""
        if not training:
            return images
        jittered = self._jitter(images, transformation)
        images = ops.where(_per_image(transformation["jitter"]), jittered, images)
        return ops.where(
            _per_image(transformation["grayscale"]), grayscale(images), images
        )

    def call(self, images, training=True):
        images, unbatched = image_utils.to_batched_float(
            images, self.__class__.__name__
        )
        transformation = self.get_random_transformation(images, training=training)
        outputs = self.transform_images(images, transformation, training=training)
        return outputs[0] if unbatched else outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "strength": self.strength,
                "brightness": self.brightness,
                "jitter_probability": self.jitter_probability,
                "grayscale_probability": self.grayscale_probability,
                "random_order": self.random_order,
                "seed": self.seed,
            }
        )
        return config
