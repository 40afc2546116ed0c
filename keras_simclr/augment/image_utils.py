"""Shared helpers of the augmentation layers (not public API)."""

import keras
import numpy as np
from keras import ops


def static_shape(images):
    """The static shape as a tuple, or None when even the rank is unknown."""
    try:
        return tuple(images.shape)
    except (TypeError, ValueError):
        return None


def check_images(images, layer_name):
    """Raises unless `images` is (H, W, 3) or (batch, H, W, 3)."""
    shape = static_shape(images)
    if shape is None or len(shape) not in (3, 4) or shape[-1] != 3:
        raise ValueError(
            f"{layer_name} expects RGB images of shape (batch, height, width, 3) "
            f"or (height, width, 3). Received: images.shape={shape}"
        )


# Floats may exceed [0, 1] by this much (rounding) before they are refused.
UNIT_RANGE_TOLERANCE = 1e-3


def image_range_message(what, dtype):
    """The error text for images outside the accepted range.

    It holds two `{}` placeholders, the received minimum and maximum, and no
    other braces, so that `str.format` (on concrete values) and
    `tf.strings.format` (inside a `tf.data` pipeline) fill the same text.
    """
    return (
        "Images enter as uint8 (other integer types in [0, 255]) or as "
        "floats in [0, 1]; floats are never rescaled or clipped. Divide 0-255 "
        "float images by 255, or pass them as uint8. "
        f"Received: {what} with dtype={dtype}, min={{}}, max={{}}"
    )


def image_value_range(dtype):
    """`(low, high)` accepted for images of `dtype`; None for uint8 (any
    value is valid, nothing to check)."""
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype == "uint8":
        return None
    if "int" in dtype:
        return 0, 255
    return -UNIT_RANGE_TOLERANCE, 1.0 + UNIT_RANGE_TOLERANCE


def check_image_range(images, what="images"):
    """Raises unless concrete `images` are uint8, integers in [0, 255] or
    floats in [0, 1] (`UNIT_RANGE_TOLERANCE` allowed for rounding).

    For NumPy arrays and eager tensors, where the values are known: inside
    a compiled step (XLA drops assertions, JAX cannot branch on values) the
    check cannot run, so the models and evaluation functions call it where
    the data enters (`fit`, `extract_features`, ...). uint8 images are not
    read at all.

    Raises:
        ValueError: naming `what`, the dtype and the received min and max.
    """
    dtype = keras.backend.standardize_dtype(images.dtype)
    bounds = image_value_range(dtype)
    if bounds is None or not np.size(images):
        return
    values = np.asarray(images)
    low, high = values.min(), values.max()
    # `not (...)` also refuses NaN.
    if not (low >= bounds[0] and high <= bounds[1]):
        raise ValueError(
            image_range_message(what, dtype).format(
                format(float(low), ".4g"), format(float(high), ".4g")
            )
        )


def to_unit_float(images):
    """Integer images (uint8, 0-255) -> float32 / 255; floats -> float32.

    Float images are assumed to be in [0, 1] already (`check_image_range`
    checks that where the data enters). The one rule every model and
    evaluation path of the library uses to take images in.
    """
    images = ops.convert_to_tensor(images)
    dtype = keras.backend.standardize_dtype(images.dtype)
    if "int" in dtype:
        return ops.cast(images, "float32") / 255.0
    if dtype != "float32":
        return ops.cast(images, "float32")
    return images


def to_batched_float(images, layer_name):
    """`to_unit_float`, after checking the shape, plus a batch axis.

    Returns the batched float32 images and whether a batch axis was added.
    """
    check_images(images, layer_name)
    images = to_unit_float(images)
    unbatched = len(images.shape) == 3
    if unbatched:
        images = ops.expand_dims(images, 0)
    return images, unbatched


def batch_size(images):
    """Batch size (a static int, or a scalar tensor when unknown at trace
    time) of (batch, H, W, 3) images; 1 for a single (H, W, 3) image."""
    if len(images.shape) == 3:
        return 1
    if images.shape[0] is not None:
        return int(images.shape[0])
    return ops.shape(images)[0]


def spatial_size(images, layer_name):
    """Static (height, width) of (batch, H, W, 3) or (H, W, 3) images."""
    height, width = images.shape[-3], images.shape[-2]
    if height is None or width is None:
        raise ValueError(
            f"{layer_name} needs the image height and width to be known when "
            f"the model is traced. Received: images.shape={tuple(images.shape)}"
        )
    return int(height), int(width)


def uniform_columns(batch, count, seed):
    """(batch, count) independent U[0, 1) draws in one random op.

    `seed` is what `keras.random` accepts (a `SeedGenerator`, an int or a
    seed tensor). Drawing every per-image parameter as a column of a single
    tensor keeps an integer `seed` from giving correlated parameters.
    """
    return keras.random.uniform((batch, count), seed=seed)


def per_image(values):
    """(batch,) -> (batch, 1, 1, 1), to broadcast against images."""
    return ops.reshape(values, (-1, 1, 1, 1))


def apply_separable(rows, cols, images):
    """Applies per-image row and column matrices: rows @ image @ cols^T.

    The columns go first, so that the second product is a plain batched
    matmul `(out_height, H) @ (H, out_width * channels)` whose output is
    already in (batch, out_height, out_width, channels) layout.

    Args:
        rows: (batch, out_height, height) matrices.
        cols: (batch, out_width, width) matrices.
        images: (batch, height, width, channels).
    """
    images = ops.einsum("bjx,byxc->byjc", cols, images)
    return ops.einsum("biy,byjc->bijc", rows, images)


class PerImageAugmentation(keras.layers.Layer):
    """Base of the random augmentation layers (not public API).

    Holds the layer's `keras.random.SeedGenerator`, computes in float32
    whatever the global dtype policy, and implements `call` as Keras's own
    preprocessing layers do: `get_random_transformation` draws the per-image
    parameters, `transform_images` applies them.
    """

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        transformation = self.get_random_transformation(images, training=training)
        return self.transform_images(images, transformation, training=training)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
