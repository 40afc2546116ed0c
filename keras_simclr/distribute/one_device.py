"""`OneDevice`: what `resolve_strategy` returns on JAX when there is nothing to distribute."""

import contextlib

import keras


class OneDevice:
    """No distribution: one device, with the `scope()` every strategy has.

    `resolve_strategy` returns it on the JAX backend when it finds one device
    (TensorFlow returns its default strategy, `tf.distribute.get_strategy()`,
    instead), so the same `with strategy.scope():` code runs whatever was
    found. `scope()` runs its block with no Keras distribution set, and
    restores the one set before (if any) when the block ends: like a
    `keras.distribution.Distribution`'s scope, with "none" as the
    distribution. On TensorFlow it does nothing (a model built outside a
    `tf.distribute` strategy's scope is a one-device model).

    `keras_simclr.distribute.replicas_of(OneDevice())` is 1.

    Example:

    ```python
    strategy = keras_simclr.distribute.resolve_strategy()  # OneDevice on a 1-device JAX host
    with strategy.scope():
        model = keras_simclr.models.ContrastiveModel(...)
        model.compile(optimizer="adam")
        model.fit(images, epochs=1)
    ```
    """

    @contextlib.contextmanager
    def scope(self):
        """Runs the block with no Keras distribution (JAX), restoring the previous one after."""
        if keras.backend.backend() != "jax":
            yield
            return
        current = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(current)

    def __repr__(self):
        return "OneDevice()"
