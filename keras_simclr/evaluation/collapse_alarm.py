import warnings

import keras


class CollapseAlarm(keras.callbacks.Callback):
    """Warns when the projections collapse towards a single point.

    `ContrastiveModel` logs `z_std`, the mean over dimensions of the
    per-dimension standard deviation of the L2-normalized projections. For
    `d`-dimensional projections spread over the sphere it is about
    `1 / sqrt(d)`; it falls towards 0 when every image maps to the same
    direction (collapse). This callback warns at the end of any epoch whose
    `z_std` falls below `threshold / sqrt(d)`.

    Args:
        threshold: fraction of the healthy value `1 / sqrt(d)` below which it
            warns (default 0.1).
        monitor: the log entry to read (default `"z_std"`).

    Example:

    ```python
    model.fit(data, epochs=10, callbacks=[CollapseAlarm()])
    ```

    References:
        - Jing et al., Understanding Dimensional Collapse in Contrastive
          Self-supervised Learning, ICLR 2022.
    """

    def __init__(self, threshold=0.1, monitor="z_std"):
        super().__init__()
        self.threshold = threshold
        self.monitor = monitor
        self.alarms = []

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        dim = self.model.projection_head.output_dim
        floor = self.threshold / dim**0.5
        if float(value) < floor:
            self.alarms.append(epoch + 1)
            warnings.warn(
                f"Representation collapse suspected at epoch {epoch + 1}: "
                f"{self.monitor}={float(value):.4g} is below {floor:.4g} "
                f"({self.threshold} / sqrt({dim})). Check the temperature, "
                "learning rate and augmentation strength.",
                RuntimeWarning,
                stacklevel=2,
            )
