"""Freezing a model's variables for the length of a `with` block."""

import contextlib


@contextlib.contextmanager
def frozen_variables(layer):
    """Makes every variable of `layer` non-trainable inside the block.

    Keras trains the variables that are `trainable` and whose layers are;
    marking each variable of `layer` (all of them, its sublayers' included:
    `layer.variables`) non-trainable keeps a model that contains `layer`
    from training it, as `layer.trainable = False` would. Unlike that
    setter, which also sets the flag of every sublayer, this touches no
    layer's `trainable` flag, so nothing of the layers needs restoring; on
    exit each variable gets back its own flag, also when the block raises.
    The layers' `trainable` flags are unchanged, so a frozen BatchNorm layer
    stays frozen and the others keep theirs; call `layer` with
    `training=False` for inference-mode statistics.

    Args:
        layer: a `keras.layers.Layer` or `keras.Model`.

    Yields:
        `layer`.

    Example:

    ```python
    with frozen_variables(encoder):
        probe.compile(...)
        probe.fit(...)  # trains only the probe's own variables
    ```
    """
    flags = [(variable, variable.trainable) for variable in layer.variables]
    for variable, _ in flags:
        variable.trainable = False
    try:
        yield layer
    finally:
        for variable, flag in flags:
            variable.trainable = flag
