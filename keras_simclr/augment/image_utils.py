"""Shared helpers of the augmentation layers (not public API)."""

from keras import ops


def check_images(images, layer_name):
    """Raises unless `images` is (H, W, 3) or (batch, H, W, 3)."""
    shape = tuple(images.shape)
    if len(shape) not in (3, 4) or shape[-1] != 3:
        raise ValueError(
            f"{layer_name} expects RGB images of shape (batch, height, width, 3) "
            f"or (height, width, 3). Received: images.shape={shape}"
        )


def to_batched_float(images, layer_name):
    """uint8 -> float32 in [0, 1]; floats -> float32 (assumed in [0, 1]).

    Returns the batched float32 images and whether a batch axis was added.
    """
    check_images(images, layer_name)
    images = ops.convert_to_tensor(images)
    if images.dtype == "uint8":
        images = ops.cast(images, "float32") / 255.0
    elif images.dtype != "float32":
        images = ops.cast(images, "float32")
    unbatched = len(images.shape) == 3
    if unbatched:
        images = ops.expand_dims(images, 0)
    return images, unbatched


def spatial_size(images, layer_name):
    """Static (height, width) of batched images; they must be known."""
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(
            f"{layer_name} needs the image height and width to be known when "
            f"the model is traced. Received: images.shape={tuple(images.shape)}"
        )
    return int(height), int(width)


def apply_separable(rows, cols, images):
    """Applies per-image row and column matrices: rows @ image @ cols^T.

    Args:
        rows: (batch, out_height, height) matrices.
        cols: (batch, out_width, width) matrices.
        images: (batch, height, width, channels).
    """
    images = ops.einsum("biy,byxc->bixc", rows, images)
    return ops.einsum("bjx,bixc->bijc", cols, images)


def uniform(shape, low, high, seed):
    from keras import random

    return random.uniform(shape, minval=low, maxval=high, seed=seed)


def bernoulli(shape, probability, seed):
    from keras import random

    return random.uniform(shape, seed=seed) < probability
