import math

import keras
from keras import ops

from keras_simclr.augment import image_utils


def _interpolation_matrix(start, length, out_size, in_size, flip=None):
    """(batch, out_size, in_size) resampling matrices for one axis.

    Output pixel i samples the input at `start + (i + 0.5) * length /
    out_size - 0.5` (pixel centers) with a triangle (linear) kernel whose
    support widens by the downscale factor: antialiased bilinear, as
    `tf.image.resize(..., antialias=True)`. Rows are normalized, so pixels
    beyond the border are not read (the edge is extended instead).
    """
    start = ops.reshape(start, (-1, 1, 1))
    length = ops.reshape(length, (-1, 1, 1))
    out_index = ops.reshape(ops.arange(out_size, dtype="float32"), (1, -1, 1))
    if flip is not None:
        flipped = (out_size - 1.0) - out_index
        out_index = ops.where(ops.reshape(flip, (-1, 1, 1)), flipped, out_index)
    step = length / out_size
    source = start + (out_index + 0.5) * step - 0.5
    support = ops.maximum(step, 1.0)
    in_index = ops.reshape(ops.arange(in_size, dtype="float32"), (1, 1, -1))
    weights = ops.maximum(1.0 - ops.abs(in_index - source) / support, 0.0)
    return weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random area and aspect ratio of every image, resized to a fixed size.

    The "Inception crop" of SimCLR: per image, an area fraction `s ~
    U(scale)` of the image and an aspect ratio `r` with `log r ~
    U(log aspect_ratio)` give a crop of `sqrt(s * H * W * r)` by
    `sqrt(s * H * W / r)` pixels, clipped to the image (instead of the
    reference's ten rejection-sampling tries: the layer stays vectorized and
    static-shaped), at a uniformly random position. The crop is resampled to
    `(height, width)` with antialiased bilinear interpolation written as two
    per-image matrix products, so it runs fast inside a compiled model on any
    backend. An optional horizontal flip (per image, p=0.5) is folded into the
    same matrices at no cost.

    With `training=False` the whole image is resized to `(height, width)`.

    Args:
        height: output height.
        width: output width.
        scale: range of the crop's area as a fraction of the image, within
            (0, 1].
        aspect_ratio: range of the crop's width / height.
        horizontal_flip: also flip each image left-right with p=0.5.
        seed: integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Inputs are uint8 images (scaled to [0, 1]) or floats in [0, 1], shape
    `(batch, H, W, 3)` or `(H, W, 3)`; outputs are float32 in [0, 1].

    Example:

    ```python
    crop = RandomResizedCrop(224, 224, scale=(0.08, 1.0), seed=0)
    views = crop(uint8_images)  # (batch, 224, 224, 3) float32
    ```

    References:
        - Szegedy et al., Going Deeper with Convolutions, 2015 (the crop).
        - Chen et al., SimCLR, 2020, appendix A.
    """

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        aspect_ratio=(3.0 / 4.0, 4.0 / 3.0),
        horizontal_flip=False,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        scale = tuple(float(v) for v in scale)
        aspect_ratio = tuple(float(v) for v in aspect_ratio)
        if len(scale) != 2 or not (0.0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(
                "`scale` must be (min, max) with 0 < min <= max <= 1. "
                f"Received: scale={scale}"
            )
        if len(aspect_ratio) != 2 or not (0.0 < aspect_ratio[0] <= aspect_ratio[1]):
            raise ValueError(
                "`aspect_ratio` must be (min, max) with 0 < min <= max. "
                f"Received: aspect_ratio={aspect_ratio}"
            )
        if int(height) < 1 or int(width) < 1:
            raise ValueError(
                "`height` and `width` must be positive. "
                f"Received: height={height}, width={width}"
            )
        self.height = int(height)
        self.width = int(width)
        self.scale = scale
        self.aspect_ratio = aspect_ratio
        self.horizontal_flip = horizontal_flip
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, images, training=True, seed=None):
        """Draws one crop box (and flip) per image.

        Returns:
            dict of (batch,) float32 tensors `top`, `left`, `crop_height`,
            `crop_width` (pixels, may be fractional) and boolean `flip`.
        """
        seed = seed if seed is not None else self.seed_generator
        image_height, image_width = image_utils.spatial_size(
            images, self.__class__.__name__
        )
        batch = ops.shape(images)[0]
        if not training:
            full = ops.ones((batch,), "float32")
            return {
                "top": full * 0.0,
                "left": full * 0.0,
                "crop_height": full * image_height,
                "crop_width": full * image_width,
                "flip": full < 0.0,
            }
        area = image_height * image_width * image_utils.uniform(
            (batch,), self.scale[0], self.scale[1], seed
        )
        log_ratio = image_utils.uniform(
            (batch,),
            math.log(self.aspect_ratio[0]),
            math.log(self.aspect_ratio[1]),
            seed,
        )
        ratio = ops.exp(log_ratio)
        crop_width = ops.minimum(ops.sqrt(area * ratio), float(image_width))
        crop_height = ops.minimum(ops.sqrt(area / ratio), float(image_height))
        top = image_utils.uniform((batch,), 0.0, 1.0, seed) * (
            image_height - crop_height
        )
        left = image_utils.uniform((batch,), 0.0, 1.0, seed) * (
            image_width - crop_width
        )
        if self.horizontal_flip:
            flip = image_utils.bernoulli((batch,), 0.5, seed)
        else:
            flip = ops.zeros((batch,), "float32") > 1.0
        return {
            "top": top,
            "left": left,
            "crop_height": crop_height,
            "crop_width": crop_width,
            "flip": flip,
        }

    def transform_images(self, images, transformation, training=True):
        """Resamples batched float32 images to the drawn boxes."""
        image_height, image_width = image_utils.spatial_size(
            images, self.__class__.__name__
        )
        rows = _interpolation_matrix(
            transformation["top"],
            transformation["crop_height"],
            self.height,
            image_height,
        )
        cols = _interpolation_matrix(
            transformation["left"],
            transformation["crop_width"],
            self.width,
            image_width,
            flip=transformation["flip"],
        )
        return ops.clip(image_utils.apply_separable(rows, cols, images), 0.0, 1.0)

    def call(self, images, training=True):
        images, unbatched = image_utils.to_batched_float(
            images, self.__class__.__name__
        )
        transformation = self.get_random_transformation(images, training=training)
        outputs = self.transform_images(images, transformation, training=training)
        return outputs[0] if unbatched else outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + (self.height, self.width, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": self.scale,
                "aspect_ratio": self.aspect_ratio,
                "horizontal_flip": self.horizontal_flip,
                "seed": self.seed,
            }
        )
        return config
