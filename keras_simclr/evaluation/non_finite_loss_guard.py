import math

import keras


class NonFiniteLossError(FloatingPointError):
    """Raised when training produced a NaN or infinite loss."""


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, naming epoch and step.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops quietly, it raises
    `NonFiniteLossError` so a script or the command line fails loudly. It
    raises before the epoch ends, so epoch-end checkpoints keep the last good
    epoch.

    Args:
        monitor: the log entry to check (default `"loss"`).

    Example:

    ```python
    model.fit(data, epochs=10, callbacks=[NonFiniteLossGuard()])
    ```
    """

    def __init__(self, monitor="loss"):
        super().__init__()
        self.monitor = monitor
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(keras.ops.convert_to_numpy(value))
        if not math.isfinite(value):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"Non-finite {self.monitor} ({value}) at epoch {self._epoch + 1}, "
                f"step {batch + 1}. Training stopped; checkpoints written at the "
                "end of earlier epochs are kept. Lower the learning rate or "
                "check the input data."
            )
