import math

import keras
from keras import ops

from keras_simclr.augment import image_utils


def interpolation_matrix(start, length, out_size, in_size, flip=None):
    """(batch, out_size, in_size) resampling matrices along one axis.

    Output pixel `i` of an image samples the input at
    `start + (i + 0.5) * length / out_size - 0.5` (pixel centers, as
    `tf.image.resize`) with a triangle (linear) kernel whose half-width is
    `max(1, length / out_size)` input pixels: bilinear interpolation when
    upsampling, antialiased (area-like) when downsampling, as
    `tf.image.resize(..., antialias=True)` and `ScaleAndTranslate`. Each row
    is normalized to sum to 1, so taps beyond the image border are dropped
    rather than read as zeros. `flip` (batch,) bool reverses the output
    order of the flipped images (a horizontal flip folded into the matrix).

    Args:
        start: (batch,) first covered input coordinate (pixel edge), float.
        length: (batch,) covered input length in pixels, float.
        out_size: int, number of output pixels.
        in_size: int, number of input pixels.
        flip: optional (batch,) bool.
    """
    start = ops.reshape(ops.cast(start, "float32"), (-1, 1, 1))
    length = ops.reshape(ops.cast(length, "float32"), (-1, 1, 1))
    out_index = ops.reshape(ops.arange(out_size, dtype="float32"), (1, -1, 1))
    if flip is not None:
        flipped = (out_size - 1.0) - out_index
        out_index = ops.where(ops.reshape(flip, (-1, 1, 1)), flipped, out_index)
    step = length / out_size
    source = start + (out_index + 0.5) * step - 0.5
    support = ops.maximum(step, 1.0)
    in_index = ops.reshape(ops.arange(in_size, dtype="float32"), (1, 1, -1))
    weights = ops.relu(1.0 - ops.abs(in_index - source) / support)
    return weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomResizedCrop(image_utils.PerImageAugmentation):
    """Crops a random area and aspect ratio of every image, resized to a fixed size.

    The "Inception crop" of SimCLR and torchvision, drawn per image: an area
    fraction `s ~ U(scale)` of the image (area `A = H * W`) and an aspect
    ratio (width / height) `r` with `log r ~ U(log aspect_ratio)` give a box
    of `sqrt(s * A * r)` by `sqrt(s * A / r)` pixels, at a uniformly random
    position inside the image.

    Where the reference retries up to 10 (torchvision) or 100 (SimCLR)
    times when the box does not fit and finally falls back to a center
    crop, this layer stays vectorized and static-shaped: it clips `log r`
    to the range in which a box of area `s * A` fits the image,
    `[log(s * A / H**2), log(W**2 / (s * A))]` (never empty since `s <= 1`).
    The area fraction is therefore always exactly `s`, and on a square image
    the ratio stays inside `aspect_ratio` whenever that range contains 1;
    only boxes that would not fit (e.g. `s > 3/4` at ratio 4/3) are pushed to
    the nearest ratio that fits, instead of being redrawn. Box sizes and
    offsets are continuous (sub-pixel).

    The box is resampled to `(height, width)` with antialiased bilinear
    interpolation (a triangle kernel widened by the downscale factor, as
    `tf.image.resize(..., antialias=True)`), written as two per-image matrix
    products: `(batch, height, H)` row and `(batch, width, W)` column
    matrices applied with `einsum`. That is static-shaped, jit-friendly and
    matmul-fast on any backend. The optional horizontal flip (per image,
    p=0.5) reverses the column matrix, at no cost.

    With `training=False` the whole image is resized to `(height, width)`
    with the same interpolation (no crop, no flip).

    Inputs are integer images (uint8, 0-255, scaled to [0, 1]) or floats in
    [0, 1], shape `(batch, H, W, 3)` or `(H, W, 3)`, with static `H` and `W`;
    outputs are float32 in [0, 1], shape `(batch, height, width, 3)` (or
    `(height, width, 3)`).

    Args:
        height: output height.
        width: output width.
        scale: `(min, max)` range of the crop area as a fraction of the
            image area, within (0, 1].
        aspect_ratio: `(min, max)` range of the crop width / height, both
            positive.
        horizontal_flip: also flip each image left-right with p=0.5.
        seed: integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer` (the `dtype` defaults to
            `"float32"` so that a mixed-precision policy does not make the
            augmentation run in half precision).

    Example:

    ```python
    crop = RandomResizedCrop(224, 224, scale=(0.08, 1.0), horizontal_flip=True, seed=0)
    views = crop(uint8_images)  # (batch, 224, 224, 3) float32 in [0, 1]
    ```

    References:
        - Szegedy et al., Going Deeper with Convolutions, CVPR 2015 (the
          crop's area and aspect-ratio sampling).
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations (SimCLR), ICML 2020, appendix A.
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
        super().__init__(seed=seed, **kwargs)
        try:
            scale = tuple(float(v) for v in scale)
            aspect_ratio = tuple(float(v) for v in aspect_ratio)
        except (TypeError, ValueError):
            raise ValueError(
                "`scale` and `aspect_ratio` must be (min, max) pairs of numbers. "
                f"Received: scale={scale}, aspect_ratio={aspect_ratio}"
            ) from None
        if len(scale) != 2 or not (0.0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(
                f"`scale` must be (min, max) with 0 < min <= max <= 1. Received: scale={scale}"
            )
        if len(aspect_ratio) != 2 or not (0.0 < aspect_ratio[0] <= aspect_ratio[1]):
            raise ValueError(
                "`aspect_ratio` must be (min, max) with 0 < min <= max. "
                f"Received: aspect_ratio={aspect_ratio}"
            )
        if int(height) < 1 or int(width) < 1:
            raise ValueError(
                f"`height` and `width` must be positive. Received: height={height}, width={width}"
            )
        self.height = int(height)
        self.width = int(width)
        self.scale = scale
        self.aspect_ratio = aspect_ratio
        self.horizontal_flip = bool(horizontal_flip)

    def get_random_transformation(self, images, training=True, seed=None):
        """Draws one crop box (and flip) per image.

        Args:
            images: `(batch, H, W, 3)` or `(H, W, 3)` images (only the shape
                is used).
            training: `False` gives the whole image, unflipped.
            seed: optional seed for `keras.random` (an int, a seed tensor or
                a `SeedGenerator`); the layer's own generator by default.

        Returns:
            dict of (batch,) tensors: float32 `top`, `left`, `crop_height`,
            `crop_width` (pixels, fractional) and bool `flip`.
        """
        image_utils.check_images(images, self.__class__.__name__)
        image_height, image_width = image_utils.spatial_size(images, self.__class__.__name__)
        batch = image_utils.batch_size(images)
        if not training:
            zeros = ops.zeros((batch,), "float32")
            return {
                "top": zeros,
                "left": zeros,
                "crop_height": zeros + float(image_height),
                "crop_width": zeros + float(image_width),
                "flip": ops.zeros((batch,), "bool"),
            }
        seed = self.seed_generator if seed is None else seed
        noise = image_utils.uniform_columns(batch, 5, seed)
        image_area = float(image_height * image_width)
        low, high = self.scale
        area = image_area * (low + (high - low) * noise[:, 0])
        low, high = math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])
        log_ratio = low + (high - low) * noise[:, 1]
        # Keep the area; move the ratio into the range where the box fits.
        log_ratio = ops.minimum(
            ops.maximum(log_ratio, ops.log(area / float(image_height**2))),
            ops.log(float(image_width**2) / area),
        )
        ratio = ops.exp(log_ratio)
        crop_height = ops.minimum(ops.sqrt(area / ratio), float(image_height))
        crop_width = ops.minimum(ops.sqrt(area * ratio), float(image_width))
        if self.horizontal_flip:
            flip = noise[:, 4] < 0.5
        else:
            flip = ops.zeros((batch,), "bool")
        return {
            "top": noise[:, 2] * (image_height - crop_height),
            "left": noise[:, 3] * (image_width - crop_width),
            "crop_height": crop_height,
            "crop_width": crop_width,
            "flip": flip,
        }

    def transform_images(self, images, transformation, training=True):
        """Resamples the boxes in `transformation` to `(height, width)`.

        `transformation=None` (or `training=False`) resizes whole images.
        """
        images, unbatched = image_utils.to_batched_float(images, self.__class__.__name__)
        if transformation is None or not training:
            transformation = self.get_random_transformation(images, training=False)
        image_height, image_width = image_utils.spatial_size(images, self.__class__.__name__)
        rows = interpolation_matrix(
            transformation["top"],
            transformation["crop_height"],
            self.height,
            image_height,
        )
        cols = interpolation_matrix(
            transformation["left"],
            transformation["crop_width"],
            self.width,
            image_width,
            flip=transformation["flip"],
        )
        outputs = ops.clip(image_utils.apply_separable(rows, cols, images), 0.0, 1.0)
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
            }
        )
        return config
