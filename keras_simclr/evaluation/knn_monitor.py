import keras

from keras_simclr.evaluation.knn import evaluate_knn


class KNNMonitor(keras.callbacks.Callback):
    """Logs weighted kNN accuracy of the encoder's features during `fit`.

    Every `every_n_epochs` epochs and after the last epoch, it extracts
    features of `train_data` (the memory bank) and `test_data` (the queries)
    with the encoder in inference mode and writes `logs["knn_accuracy"]`, so
    the value appears in `fit(...).history["knn_accuracy"]`, in CSV and
    TensorBoard logs.

    Args:
        train_data: `(images, labels)` arrays or a `tf.data.Dataset` of
            `(images, labels)` batches (uint8 images or floats in [0, 1]).
        test_data: the same for the queries.
        num_classes: number of classes.
        k: neighbours (capped at the memory-bank size).
        temperature: weighting temperature.
        every_n_epochs: evaluation period in epochs.
        encoder: the model to evaluate; `None`: `self.model.encoder`.

    Example:

    ```python
    monitor = KNNMonitor((x_train, y_train), (x_test, y_test), num_classes=10)
    history = model.fit(x_train, epochs=10, callbacks=[monitor])
    history.history["knn_accuracy"]
    ```
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
    ):
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(
                f"every_n_epochs must be >= 1. Received: every_n_epochs={every_n_epochs}"
            )
        self.train_data = train_data
        self.test_data = test_data
        self.num_classes = num_classes
        self.k = k
        self.temperature = temperature
        self.every_n_epochs = every_n_epochs
        self.encoder = encoder
        self.results = {}

    def evaluate(self):
        encoder = self.encoder if self.encoder is not None else self.model.encoder
        return evaluate_knn(
            encoder,
            self.train_data,
            self.test_data,
            self.num_classes,
            k=self.k,
            temperature=self.temperature,
        )

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        accuracy = self.evaluate()
        self.results[epoch + 1] = accuracy
        if logs is not None:
            logs["knn_accuracy"] = accuracy
        print(f"\nEpoch {epoch + 1}: knn_accuracy={accuracy:.4f}")
