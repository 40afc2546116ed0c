"""The recipes' learning rate: scaled with the batch, warmed up, cosine-decayed."""

import math


def learning_rate_for(base, batch_size, scaling="linear"):
    """SimCLR's learning-rate scaling with the batch size.

    Args:
        base: the base learning rate.
        batch_size: the global batch size.
        scaling: `"linear"` (base * batch / 256), `"sqrt"` (base * sqrt(batch))
            or `"none"` (base).

    Returns:
        the peak learning rate.

    Example:

    >>> learning_rate_for(0.3, 1024)
    1.2
    """
    if scaling == "linear":
        return base * batch_size / 256.0
    if scaling == "sqrt":
        return base * math.sqrt(batch_size)
    return base


def warmup_cosine(peak, total_steps, warmup_steps):
    """A linear warmup from 0 to `peak`, then cosine decay to 0 at `total_steps`.

    Args:
        peak: the learning rate at the end of the warmup.
        total_steps: the steps of the whole run.
        warmup_steps: the warmup's steps (0: start at `peak`).

    Returns:
        a `keras.optimizers.schedules.CosineDecay`.
    """
    import keras

    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
