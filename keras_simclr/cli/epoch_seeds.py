"""`--deterministic`: randomness derived from `(seed, epoch, step)`."""

import keras
import numpy as np


def enable_op_determinism():
    """Makes the backend's kernels deterministic (TensorFlow: op determinism).

    On TensorFlow this also turns XLA off for `fit` (Keras does so under op
    determinism). On JAX the CPU kernels are deterministic already; on GPUs
    set `XLA_FLAGS=--xla_gpu_deterministic_ops=true` before starting Python.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _seed_states(model):
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class EpochSeeds(keras.callbacks.Callback):
    """Restarts every random stream of the model at each epoch from `(seed, epoch)`.

    Keras's `SeedGenerator` states are not saved in a `.keras` file, so a run
    resumed from a checkpoint would draw other augmentations than the run it
    continues. At the start of every epoch this sets each generator's state
    to a value derived from its own seed and the epoch number (and a step
    counter of 0, which the generator advances per draw), so epoch `e` draws
    the same views whether or not the run was stopped before it. Together
    with a data order derived from `(seed, epoch)` (an in-memory
    `ImageDataset`'s `training_batches`) and
    op determinism, a resumed run repeats the uninterrupted one.

    Example:

    ```python
    train = keras_simclr.data.load_arrays(images, labels)
    model.fit(train.training_batches(256, seed=0), epochs=10, callbacks=[EpochSeeds()])
    ```
    """

    def on_train_begin(self, logs=None):
        # The generators' constructor seeds (the state itself is never saved).
        self._bases = [
            int(keras.ops.convert_to_numpy(state)[0]) for state in _seed_states(self.model)
        ]

    def on_epoch_begin(self, epoch, logs=None):
        for base, state in zip(self._bases, _seed_states(self.model)):
            mixed = np.random.SeedSequence([base, epoch]).generate_state(1)[0]
            state.assign(np.array([mixed % 2**31, 0]).astype(state.dtype))
