"""Image helpers shared by the loaders.

`standardize_image_size` is plain Python, shared with the TensorFlow-free
`numpy_images`; the others are TensorFlow ops used inside tf.data, which
import TensorFlow when first called.
"""

import numbers


def standardize_image_size(image_size):
    """`None`, an int or `(H, W)` -> `None` or a tuple of two positive ints."""
    if image_size is None:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
        valid = all(
            int(v) == v and int(v) > 0 and not isinstance(v, bool) for v in (height, width)
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "image_size must be a positive int or a (height, width) pair of "
            f"positive ints. Received: image_size={image_size!r}"
        )
    return int(height), int(width)


def to_uint8(images):
    """Rounds float pixel values in [0, 255] to uint8."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def resize_image(image, image_size):
    """Resizes one uint8 `(h, w, 3)` image to `image_size`, if it differs.

    Bilinear with antialiasing (so downsizing averages rather than aliases);
    an image already of that size passes through untouched.
    """
    import tensorflow as tf

    height, width = image_size
    static = tuple(image.shape[:2])
    if static != (height, width):
        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
        image = tf.cond(
            same,
            lambda: image,
            lambda: to_uint8(
                tf.image.resize(image, (height, width), method="bilinear", antialias=True)
            ),
        )
    return tf.ensure_shape(image, (height, width, 3))
