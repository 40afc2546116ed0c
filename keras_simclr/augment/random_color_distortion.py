import keras
from keras import ops

from keras_simclr.augment import image_utils
from keras_simclr.utils.validation import is_number

# tf.image.rgb_to_grayscale weights (ITU-R 601).
_GRAY = (0.2989, 0.5870, 0.1140)
_BRIGHTNESS_MODES = ("multiplicative", "additive")
# Indices of the jitter operations in `order`.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3

_per_image = image_utils.per_image


def grayscale(images):
    """RGB -> gray (`tf.image.rgb_to_grayscale` weights), as 3 equal channels."""
    gray = ops.sum(images * ops.convert_to_tensor(_GRAY, "float32"), axis=-1, keepdims=True)
    return ops.repeat(gray, 3, axis=-1)


def adjust_saturation_and_hue(images, saturation, hue):
    """`tf.image.adjust_saturation(x, saturation)` then `adjust_hue(., hue)`.

    Both act in HSV space: the saturation is multiplied by `saturation` and
    clipped to [0, 1], the hue (in turns) shifted by `hue` and wrapped. With
    `v = max(r, g, b)` and chroma `c = v - min(r, g, b)` (`s = c / v`), the
    round trip through HSV has a closed form, used here instead of
    `keras.ops.image.rgb_to_hsv` / `hsv_to_rgb`: the same result up to float
    rounding (1e-6), and under XLA on CPU it cut the color distortion's
    share of the SimCLR presets' time by about half, mostly because XLA
    fuses it with the neighbouring operations far better. The saturation
    scales the chroma,
    `c' = min(c * saturation, v)`, and each channel `n` (5 for red, 3 for
    green, 1 for blue) is `v - c' * clip(min(k, 4 - k), 0, 1)` with
    `k = (n + 6 * h') mod 6`, `h'` the shifted hue.

    Args:
        images: (batch, H, W, 3) float RGB in [0, 1].
        saturation: saturation factor(s) >= 0, broadcastable to
            (batch, H, W, 1); 1 leaves the saturation unchanged.
        hue: hue shift(s) in turns, broadcastable to (batch, H, W, 1); 0
            leaves the hue unchanged.
    """
    r, g, b = ops.split(images, 3, axis=-1)
    value = ops.maximum(ops.maximum(r, g), b)
    chroma = value - ops.minimum(ops.minimum(r, g), b)
    # Hue in sextants, in [-1, 5), shifted, then wrapped to [0, 6). (Of the
    # equivalent forms tried, this one compiled fastest with XLA on CPU.)
    safe = ops.where(chroma > 0.0, chroma, 1.0)
    sextant = ops.where(
        ops.equal(value, r),
        (g - b) / safe,
        ops.where(ops.equal(value, g), (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    sextant = sextant + 6.0 * hue
    sextant = sextant - 6.0 * ops.floor(sextant / 6.0)
    chroma = ops.minimum(chroma * saturation, value)
    # k = (n + sextant) mod 6 for the red, green and blue channels at once.
    k = sextant + ops.convert_to_tensor([5.0, 3.0, 1.0], "float32")
    k = ops.where(k >= 6.0, k - 6.0, k)
    return value - chroma * ops.clip(ops.minimum(k, 4.0 - k), 0.0, 1.0)


def _contrast_mean(images):
    # tf.image.adjust_contrast: per-image, per-channel mean over H and W.
    return ops.mean(images, axis=(1, 2), keepdims=True)


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomColorDistortion(image_utils.PerImageAugmentation):
    """SimCLR's color distortion: color jitter in random order, then grayscale.

    Per image, with probability `jitter_probability`, four operations are
    applied in an order drawn per image (a uniformly random permutation),
    each followed by clipping to [0, 1] as in google-research/simclr's
    `color_jitter`. With `s = strength`:

    - brightness, `"multiplicative"` (SimCLR v2): `x * f`,
      `f ~ U[max(0, 1 - 0.8s), 1 + 0.8s]`; `"additive"` (SimCLR v1,
      `tf.image.random_brightness`): `x + d`, `d ~ U[-0.8s, 0.8s]`;
    - contrast: `(x - mean) * f + mean` with the per-image, per-channel mean
      (`tf.image.adjust_contrast`), `f ~ U[max(0, 1 - 0.8s), 1 + 0.8s]`;
    - saturation: HSV saturation times `f ~ U[max(0, 1 - 0.8s), 1 + 0.8s]`,
      clipped to [0, 1] (`tf.image.adjust_saturation`);
    - hue: HSV hue plus `d ~ U[-0.2s, 0.2s]`, wrapping around
      (`tf.image.adjust_hue`).

    Then, per image with probability `grayscale_probability` (whether or not
    it was jittered), the image becomes gray, replicated to 3 channels.

    Cost of the per-image random order with static shapes: at each of the
    four steps, every image goes through both kinds of operation and keeps
    (`where`) the one its order names. Brightness and contrast are one
    per-image affine map `x * a + b`; saturation and hue share one pass in
    HSV space, in which an image scales its saturation or shifts its hue
    depending on its step. So the random order costs four HSV passes and
    four affine maps (the fixed order: one and two), not 16 operations. The
    HSV pass is a closed form of the RGB -> HSV -> RGB round trip (see
    `adjust_saturation_and_hue`), equal to `tf.image.adjust_saturation` /
    `adjust_hue` up to float rounding. With `random_order=False` the order
    is brightness, contrast, saturation, hue (SimCLR's
    `color_jitter_nonrand`).

    Inputs are integer images (uint8, 0-255, scaled to [0, 1]) or floats in
    [0, 1], shape `(batch, H, W, 3)` or `(H, W, 3)`; outputs are float32 in
    [0, 1], same shape. With `training=False` the layer returns its input
    (as float32 in [0, 1]).

    Args:
        strength: color distortion strength `s` (SimCLR: 1.0 on ImageNet,
            0.5 on CIFAR-10; 0.5 is MoCo v2's `ColorJitter(0.4, 0.4, 0.4,
            0.1)`).
        brightness: `"multiplicative"` (SimCLR v2, the default) or
            `"additive"` (SimCLR v1).
        jitter_probability: probability of the color jitter, per image.
        grayscale_probability: probability of grayscale, per image.
        random_order: draw the order of the four jitter operations per image.
        seed: integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer` (the `dtype` defaults to
            `"float32"`).

    Example:

    ```python
    distort = RandomColorDistortion(strength=0.5, seed=0)
    views = distort(images)  # float32 in [0, 1]
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations (SimCLR), ICML 2020, appendix A (color distortion
          code).
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020 (multiplicative brightness).
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
        super().__init__(seed=seed, **kwargs)
        if not is_number(strength) or not strength >= 0:
            raise ValueError(f"`strength` must be a number >= 0. Received: strength={strength}")
        if brightness not in _BRIGHTNESS_MODES:
            raise ValueError(
                f"`brightness` must be one of {_BRIGHTNESS_MODES}. "
                f"Received: brightness={brightness!r}"
            )
        for name, value in (
            ("jitter_probability", jitter_probability),
            ("grayscale_probability", grayscale_probability),
        ):
            if not is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1]. Received: {name}={value}")
        self.strength = float(strength)
        self.brightness = brightness
        self.jitter_probability = float(jitter_probability)
        self.grayscale_probability = float(grayscale_probability)
        self.random_order = bool(random_order)

    def get_random_transformation(self, images, training=True, seed=None):
        """Draws every parameter per image.

        Args:
            images: `(batch, H, W, 3)` or `(H, W, 3)` images (only the shape
                is used).
            training: `False` returns `None` (no distortion).
            seed: optional seed for `keras.random` (an int, a seed tensor or
                a `SeedGenerator`); the layer's own generator by default.

        Returns:
            dict of (batch,) tensors: float32 `brightness` (factor, or delta
            for additive brightness), `contrast`, `saturation` (factors),
            `hue` (delta, in turns), bool `jitter` and `grayscale`, and
            int32 `order` (batch, 4): the operation applied at each step
            (0 brightness, 1 contrast, 2 saturation, 3 hue).
        """
        image_utils.check_images(images, self.__class__.__name__)
        if not training:
            return None
        seed = self.seed_generator if seed is None else seed
        batch = image_utils.batch_size(images)
        noise = image_utils.uniform_columns(batch, 10, seed)
        s = self.strength
        low, high = max(0.0, 1.0 - 0.8 * s), 1.0 + 0.8 * s

        def scaled(column, low, high):
            return low + (high - low) * noise[:, column]

        if self.brightness == "multiplicative":
            brightness = scaled(0, low, high)
        else:
            brightness = scaled(0, -0.8 * s, 0.8 * s)
        if self.random_order:
            order = ops.cast(ops.argsort(noise[:, 6:10], axis=-1), "int32")
        else:
            order = ops.zeros((batch, 4), "int32") + ops.arange(4, dtype="int32")
        return {
            "brightness": brightness,
            "contrast": scaled(1, low, high),
            "saturation": scaled(2, low, high),
            "hue": scaled(3, -0.2 * s, 0.2 * s),
            "jitter": noise[:, 4] < self.jitter_probability,
            "grayscale": noise[:, 5] < self.grayscale_probability,
            "order": order,
        }

    def _brightness_affine(self, value):
        """(scale, shift) of the brightness operation, per image."""
        if self.brightness == "multiplicative":
            return _per_image(value), 0.0
        return 1.0, _per_image(value)

    def _fixed_order_jitter(self, images, transformation):
        scale, shift = self._brightness_affine(transformation["brightness"])
        images = ops.clip(images * scale + shift, 0.0, 1.0)
        factor = _per_image(transformation["contrast"])
        mean = _contrast_mean(images)
        images = ops.clip((images - mean) * factor + mean, 0.0, 1.0)
        # Saturation then hue in one pass: the saturated image stays in
        # [0, 1] (no clip between them) and keeps its value and hue.
        images = adjust_saturation_and_hue(
            images,
            _per_image(transformation["saturation"]),
            _per_image(transformation["hue"]),
        )
        return ops.clip(images, 0.0, 1.0)

    def _random_order_step(self, images, operation, transformation):
        """Applies, to each image, the operation its `operation` (batch,) names."""
        operation = _per_image(operation)
        # Brightness or contrast: x * scale + shift, per image (and channel).
        brightness_scale, brightness_shift = self._brightness_affine(transformation["brightness"])
        contrast = _per_image(transformation["contrast"])
        is_brightness = ops.equal(operation, BRIGHTNESS)
        scale = ops.where(is_brightness, brightness_scale, contrast)
        shift = ops.where(
            is_brightness, brightness_shift, _contrast_mean(images) * (1.0 - contrast)
        )
        affine = images * scale + shift
        # Saturation or hue: one pass in HSV space, a factor of 1 or a shift
        # of 0 for the other one.
        saturation = ops.where(
            ops.equal(operation, SATURATION),
            _per_image(transformation["saturation"]),
            1.0,
        )
        hue = ops.where(ops.equal(operation, HUE), _per_image(transformation["hue"]), 0.0)
        colored = adjust_saturation_and_hue(images, saturation, hue)
        outputs = ops.where(ops.greater_equal(operation, SATURATION), colored, affine)
        return ops.clip(outputs, 0.0, 1.0)

    def transform_images(self, images, transformation, training=True):
        """Applies a drawn transformation (jitter, then grayscale).

        `transformation=None` (or `training=False`) returns the images as
        float32.
        """
        images, unbatched = image_utils.to_batched_float(images, self.__class__.__name__)
        if transformation is None or not training:
            return images[0] if unbatched else images
        if self.random_order:
            jittered = images
            for step in range(4):
                jittered = self._random_order_step(
                    jittered, transformation["order"][:, step], transformation
                )
        else:
            jittered = self._fixed_order_jitter(images, transformation)
        outputs = ops.where(_per_image(transformation["jitter"]), jittered, images)
        outputs = ops.where(_per_image(transformation["grayscale"]), grayscale(outputs), outputs)
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
            }
        )
        return config
