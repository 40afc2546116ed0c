"""Small `keras.ops` tensor helpers shared across packages (internal)."""

from keras import ops


def l2_normalize(z):
    """float32 rows scaled to unit L2 norm, as `tf.math.l2_normalize`.

    `z * rsqrt(max(sum(z**2), 1e-24))` rather than `z / norm(z)`: a row of
    zeros (e.g. a projection whose ReLU inputs are all negative) then gets
    a finite gradient (`1e12`, the `rsqrt` factor) instead of the nan of the
    norm's derivative at 0. The
    input is cast to float32 first (mixed-precision projections). It can
    differ in the last bits from `z / max(norm(z), eps)` (PyTorch's
    `F.normalize`).

    Args:
        z: a `(..., d)` tensor; normalized along the last axis.

    Returns:
        A float32 tensor of the shape of `z`.
    """
    z = ops.cast(z, "float32")
    squared = ops.sum(ops.square(z), axis=-1, keepdims=True)
    return z * ops.rsqrt(ops.maximum(squared, 1e-24))


def static_shape(x):
    """The shape of `x` as a tuple, `None` for dimensions unknown at trace
    time."""
    return tuple(x.shape) if hasattr(x, "shape") else tuple(ops.shape(x))


def compatible_shapes(shape_a, shape_b):
    """Whether two static shapes have equal rank and equal dims wherever both
    are known (`None` matches anything)."""
    return len(shape_a) == len(shape_b) and all(
        a is None or b is None or a == b for a, b in zip(shape_a, shape_b)
    )
