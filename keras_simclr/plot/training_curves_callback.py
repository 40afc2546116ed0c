"""A callback that redraws the training curves after every epoch."""

import keras

from keras_simclr.plot.training_curves import check_knn_at_init
from keras_simclr.plot.training_curves import epoch_rows
from keras_simclr.plot.training_curves import save_training_curves


class TrainingCurves(keras.callbacks.Callback):
    """Rewrites a PNG of the training curves at the end of every epoch.

    After each epoch it draws `keras_simclr.plot.training_curves` from the
    rows given as `history` (earlier epochs, e.g. those a resumed run reads
    from its `log.csv`) and the logs of every epoch seen so far, and writes
    it to `path` atomically (`save_figure`). A later row of the same epoch
    replaces an earlier one (an epoch trained again after a resume).

    Keras hands one logs dict to the callbacks in list order: place this
    callback after `KNNMonitor` (and anything else that adds to the logs),
    so that the epoch's `knn_accuracy` is drawn.

    Args:
        path: the PNG's path (e.g. `OUTPUT_DIR/curves.png`).
        history: earlier epochs, in any form `training_curves` takes
            (a `History`, its dict, or per-epoch rows with `"epoch"`
            0-based); `None`: none.
        knn_at_init: the random initial encoder's kNN accuracy, drawn as a
            dotted line (see `training_curves`); `None`: not drawn.
        dpi: dots per inch of the PNG.

    Raises:
        ValueError: a `history` or `knn_at_init` that `training_curves`
            would refuse, here, before training.

    Example:

    ```python
    curves = keras_simclr.plot.TrainingCurves("runs/curves.png")
    model.fit(batches, epochs=10, callbacks=[knn_monitor, curves])
    ```
    """

    def __init__(self, path, history=None, knn_at_init=None, dpi=100):
        super().__init__()
        self.path = path
        self.knn_at_init = check_knn_at_init(knn_at_init)
        self.dpi = dpi
        self.rows = epoch_rows(history) if history is not None else []

    def on_epoch_end(self, epoch, logs=None):
        self.rows = [row for row in self.rows if row["epoch"] != epoch]
        self.rows.append({**(logs or {}), "epoch": epoch})
        save_training_curves(self.path, self.rows, knn_at_init=self.knn_at_init, dpi=self.dpi)
