"""Image sizes and the loaders' one resampling rule: bilinear, antialiased.

Both dataset implementations resize an image only when it is not already of
the requested size, with the same rule: each output pixel is a triangle
(linear) kernel of half-width `max(1, in_size / out_size)` input pixels around
its centre, clipped to the image and normalised (bilinear when upsizing,
area-like when downsizing), as `tf.image.resize(..., "bilinear",
antialias=True)`, then rounded to uint8. It is written twice here because the
two implementations cannot run one definition:

- `resize_image` (tf.data) is `tf.image.resize`, a TensorFlow op that runs
  inside the `tf.data` graph;
- `resize_image_array` (the NumPy implementation, used on JAX without
  TensorFlow) is the same kernel as NumPy weights, applied rows then columns.

They are not bit-identical: float32 sums in another order move a value that
lies at .5 by one level when rounded. On 2,000 real CIFAR-10 JPEGs, 0.52% of
the values differ (by 1) resized 32 -> 24, and 1.44% resized 32 -> 48; none
by more than 1. `tests/data/resize_oracle.py` (float64) is the reference both
are tested against (within 1).

`keras_simclr.augment.RandomResizedCrop` uses the same kernel in `keras.ops`
on float images in [0, 1] for random boxes, without rounding to uint8; its
float32 weights differ from these by about 1e-6 (which moves 0.5% to 1.4% of
the rounded CIFAR values by one level), so it keeps its own definition.

This module imports TensorFlow only inside `resize_image`.
"""

import numbers

import numpy as np


def standardize_image_size(image_size):
    """`None`, an int or `(H, W)` -> `None` or a tuple of two positive ints.

    Raises:
        ValueError: anything else, naming what was received.
    """
    if image_size is None:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
        valid = all(int(v) == v and int(v) > 0 and not isinstance(v, bool) for v in (height, width))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "image_size must be a positive int or a (height, width) pair of "
            f"positive ints. Received: image_size={image_size!r}"
        )
    return int(height), int(width)


def resize_weights(size_in, size_out):
    """`(size_out, size_in)` float32 weights of the resampling rule along one axis."""
    scale = size_out / size_in
    width = max(1.0, 1.0 / scale)
    centres = (np.arange(size_out) + 0.5) / scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(size_in)[None, :] - centres[:, None]) / width)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_image_array(image, image_size):
    """Resizes one uint8 `(h, w, 3)` NumPy image to `image_size`, if it differs.

    An image already of that size is returned untouched (the same object).

    Args:
        image: uint8 array `(h, w, 3)`.
        image_size: `(H, W)`.

    Returns:
        a uint8 array `(H, W, 3)`.

    Example:

    ```python
    small = resize_image_array(image, (24, 24))
    ```
    """
    height, width = image_size
    if image.shape[:2] == (height, width):
        return image
    rows = resize_weights(image.shape[0], height)  # (H, h)
    cols = resize_weights(image.shape[1], width)  # (W, w)
    out = np.tensordot(rows, image.astype(np.float32), axes=(1, 0))  # (H, w, 3)
    out = np.matmul(cols[None], out)  # (1, W, w) @ (H, w, 3) -> (H, W, 3)
    return np.clip(np.round(out), 0.0, 255.0).astype(np.uint8)


def resize_image(image, image_size):
    """Resizes one uint8 `(h, w, 3)` image tensor to `image_size`, if it differs.

    A TensorFlow op for `tf.data`: `tf.image.resize` (bilinear, antialiased),
    rounded to uint8; an image already of that size passes through untouched.

    Args:
        image: uint8 tensor `(h, w, 3)`, static or dynamic size.
        image_size: `(H, W)`.

    Returns:
        a uint8 tensor of static shape `(H, W, 3)`.
    """
    import tensorflow as tf

    height, width = image_size
    static = tuple(image.shape[:2])
    if static != (height, width):
        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))

        def resized():
            floats = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(floats), 0.0, 255.0), tf.uint8)

        image = tf.cond(same, lambda: image, resized)
    return tf.ensure_shape(image, (height, width, 3))
