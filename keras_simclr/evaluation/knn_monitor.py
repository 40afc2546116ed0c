import keras

from keras_simclr.evaluation.knn import evaluate_knn
from keras_simclr.evaluation.labelled_data import check_labelled_arrays


class KNNMonitor(keras.callbacks.Callback):
    """Logs the weighted kNN accuracy of the encoder's features during `fit`.

    At the end of every `every_n_epochs`-th epoch (epochs `n, 2n, ...`,
    counted from 1) and of the last epoch of `fit`, it extracts features of
    `train_data` (the memory bank) and `test_data` (the queries) with the
    encoder in inference mode and writes the top-1 accuracy of the weighted
    kNN classifier (`weighted_knn_predict`) to `logs["knn_accuracy"]`.

    Keras passes one logs dict to every callback in list order and appends
    its `History` callback last, so the value reaches
    `fit(...).history["knn_accuracy"]`, the progress bar, and any
    `CSVLogger`, `TensorBoard`, `EarlyStopping` or `ModelCheckpoint` placed
    after this callback in the list. `history["knn_accuracy"]` holds one
    value per evaluated epoch (not per epoch); `results` maps each evaluated
    epoch (1-based) to its accuracy. If training stops early on an epoch that
    was not evaluated (e.g. `EarlyStopping`), the encoder is evaluated once
    more in `on_train_end`; that value is only in `results`, as Keras has
    already recorded the epoch's logs. `k` is capped at the memory-bank
    size.

    Args:
        train_data: the memory bank, `(images, labels)` NumPy arrays or a
            `tf.data.Dataset` of `(images, labels)` batches; uint8 images or
            floats in [0, 1].
        test_data: the queries, in the same forms.
        num_classes: number of classes.
        k: number of neighbours (InstDisc: 200).
        temperature: vote weighting temperature, > 0.
        every_n_epochs: evaluation period in epochs, >= 1.
        encoder: the `keras.Model` to evaluate; `None` uses
            `self.model.encoder` (e.g. `ContrastiveModel.encoder`).
        batch_size: batch size of feature extraction for arrays.

    Raises:
        ValueError: an argument out of range; for `(images, labels)` arrays,
            already here, before training: float images outside [0, 1] or
            labels outside `[0, num_classes)` (a dataset's values are
            checked as they are read, at the first evaluation).

    Example:

    ```python
    monitor = KNNMonitor((x_train, y_train), (x_test, y_test), num_classes=10)
    history = model.fit(x_train, epochs=10, callbacks=[monitor])
    history.history["knn_accuracy"]
    ```

    References:
        - Wu et al., Unsupervised Feature Learning via Non-Parametric
          Instance Discrimination, CVPR 2018 (weighted kNN monitor).
    """

    def __init__(
        self,
        train_data,
        test_data,
        num_classes,
        k=200,
        temperature=0.1,
        every_n_epochs=1,
        encoder=None,
        batch_size=256,
    ):
        super().__init__()
        if int(every_n_epochs) != every_n_epochs or every_n_epochs < 1:
            raise ValueError(
                f"every_n_epochs must be an integer >= 1. Received: every_n_epochs={every_n_epochs}"
            )
        if int(k) != k or k < 1:
            raise ValueError(f"k must be an integer >= 1. Received: k={k}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
        if encoder is not None and not isinstance(encoder, keras.Model):
            raise ValueError(
                "encoder must be a keras.Model or None (to use model.encoder). "
                f"Received: encoder of type {type(encoder).__name__}"
            )
        # Arrays fail now rather than after the first epochs of training.
        check_labelled_arrays(train_data, int(num_classes), "train_data")
        check_labelled_arrays(test_data, int(num_classes), "test_data")
        self.train_data = train_data
        self.test_data = test_data
        self.num_classes = int(num_classes)
        self.k = int(k)
        self.temperature = temperature
        self.every_n_epochs = int(every_n_epochs)
        self.encoder = encoder
        self.batch_size = batch_size
        self.results = {}
        self._last_epoch = None

    def _encoder(self):
        if self.encoder is not None:
            return self.encoder
        encoder = getattr(self.model, "encoder", None)
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                "KNNMonitor evaluates `model.encoder`; this model has none. Pass "
                "encoder=... to KNNMonitor. Received: a model of type "
                f"{type(self.model).__name__}"
            )
        return encoder

    def evaluate(self):
        """Returns the current kNN accuracy (does not record it)."""
        return evaluate_knn(
            self._encoder(),
            self.train_data,
            self.test_data,
            self.num_classes,
            k=self.k,
            temperature=self.temperature,
            batch_size=self.batch_size,
        )

    def on_train_begin(self, logs=None):
        self._last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch + 1
        last = epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        accuracy = self.evaluate()
        self.results[epoch + 1] = accuracy
        if logs is not None:
            logs["knn_accuracy"] = accuracy

    def on_train_end(self, logs=None):
        # Training stopped early on an epoch that was not evaluated.
        if self._last_epoch is not None and self._last_epoch not in self.results:
            self.results[self._last_epoch] = self.evaluate()
