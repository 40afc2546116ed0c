"""KNNMonitor inside `fit`: which epochs, what reaches History, early stops, JAX."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.evaluation import KNNMonitor
from keras_simclr.evaluation import evaluate_knn
from tests.conftest import run_in_subprocess


def _conv_encoder(seed=0, size=16):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, name="enc_conv")(inputs)
    x = keras.layers.BatchNormalization(name="enc_bn")(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="encoder")


def _supervised_model(encoder, num_classes=3):
    """A plain model with an `.encoder` attribute, as ContrastiveModel has."""
    inputs = keras.Input(encoder.input_shape[1:])
    model = keras.Model(inputs, keras.layers.Dense(num_classes)(encoder(inputs)))
    model.encoder = encoder
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _colour_data(count, seed, size=16):
    """uint8 images whose class is the brightest channel."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=count).astype("int32")
    images = rng.integers(0, 60, size=(count, size, size, 3))
    images[np.arange(count), :, :, labels] += 180
    return images.astype("uint8"), labels


class _Recorder(keras.callbacks.Callback):
    """Placed after the monitor: records which epochs' logs carry knn_accuracy."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def on_epoch_end(self, epoch, logs=None):
        if "knn_accuracy" in logs:
            self.seen[epoch + 1] = logs["knn_accuracy"]


def test_every_two_epochs_over_three_reaches_history_on_epochs_two_and_three():
    train, test = _colour_data(48, 0), _colour_data(24, 1)
    model = _supervised_model(_conv_encoder())
    monitor = KNNMonitor(train, test, num_classes=3, k=10, every_n_epochs=2)
    recorder = _Recorder()
    history = model.fit(*train, batch_size=16, epochs=3, verbose=0, callbacks=[monitor, recorder])
    assert sorted(monitor.results) == [2, 3]
    assert recorder.seen == monitor.results
    # History (appended last by Keras) got the same two values, in order.
    assert history.history["knn_accuracy"] == [monitor.results[2], monitor.results[3]]
    assert len(history.history["loss"]) == 3
    # The value is the kNN accuracy of the encoder as it is after epoch 3.
    assert monitor.results[3] == pytest.approx(
        evaluate_knn(model.encoder, train, test, num_classes=3, k=10)
    )
    # 24 queries: a multiple of 1/24.
    assert monitor.results[3] * 24 == pytest.approx(round(monitor.results[3] * 24))


def test_every_epoch_with_datasets_and_an_explicit_encoder():
    (x_train, y_train), (x_test, y_test) = _colour_data(48, 2), _colour_data(24, 3)
    encoder = _conv_encoder(seed=1)
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(20)
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(20)
    # The fitted model has no `.encoder`: the monitor uses the one given.
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Dense(3)(encoder(inputs)))
    model.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    monitor = KNNMonitor(train, test, num_classes=3, k=500, encoder=encoder)  # k capped at 48
    history = model.fit(x_train, y_train, batch_size=16, epochs=2, verbose=0, callbacks=[monitor])
    assert sorted(monitor.results) == [1, 2]
    assert len(history.history["knn_accuracy"]) == 2
    assert monitor.results[2] == pytest.approx(
        evaluate_knn(encoder, (x_train, y_train), (x_test, y_test), 3, k=48)
    )


def test_early_stop_on_an_unevaluated_epoch_is_evaluated_at_train_end():
    train, test = _colour_data(32, 4), _colour_data(16, 5)
    model = _supervised_model(_conv_encoder(seed=2))

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    monitor = KNNMonitor(train, test, num_classes=3, k=5, every_n_epochs=3)
    history = model.fit(
        *train, batch_size=16, epochs=5, verbose=0, callbacks=[StopAfterFirstEpoch(), monitor]
    )
    assert len(history.history["loss"]) == 1
    # Epoch 1 is neither a multiple of 3 nor the planned last epoch: it is
    # evaluated once, at train end, and recorded in `results` only.
    assert "knn_accuracy" not in history.history
    assert list(monitor.results) == [1]
    assert monitor.results[1] == pytest.approx(
        evaluate_knn(model.encoder, train, test, num_classes=3, k=5)
    )


def test_errors_name_what_was_received():
    data = _colour_data(8, 6)
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        KNNMonitor(data, data, 3, every_n_epochs=0)
    with pytest.raises(ValueError, match="temperature=0"):
        KNNMonitor(data, data, 3, temperature=0)
    with pytest.raises(ValueError, match="k=0"):
        KNNMonitor(data, data, 3, k=0)
    with pytest.raises(ValueError, match="Dense"):
        KNNMonitor(data, data, 3, encoder=keras.layers.Dense(2))
    monitor = KNNMonitor(data, data, 3, k=3)
    monitor.set_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="encoder=.*Sequential"):
        monitor.evaluate()


@pytest.mark.process
def test_monitor_and_knn_on_jax_without_tensorflow():
    # The evaluation package imports and runs on JAX with TensorFlow absent.
    code = """
import sys
sys.modules["tensorflow"] = None  # any TensorFlow import now fails
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_simclr.evaluation import KNNMonitor, evaluate_knn, weighted_knn_predict

rng = np.random.default_rng(0)
bank = rng.normal(size=(60, 8)).astype("float32")
labels = rng.integers(0, 4, size=60)
queries = rng.normal(size=(9, 8)).astype("float32")
predictions, scores = weighted_knn_predict(
    bank, labels, queries, 4, k=7, temperature=0.2, batch_size=4, return_scores=True)
b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
sim = q @ b.T
expected = np.zeros((9, 4))
for i in range(9):
    for j in np.argsort(-sim[i])[:7]:
        expected[i, labels[j]] += np.exp(sim[i, j] / 0.2)
assert (predictions == expected.argmax(1)).all()
np.testing.assert_allclose(
    scores / scores.sum(1, keepdims=True), expected / expected.sum(1, keepdims=True), rtol=1e-4)

keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 3))
h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
encoder = keras.Model(inputs, h)
outputs = keras.layers.Dense(3)(encoder(inputs))
model = keras.Model(inputs, outputs)
model.encoder = encoder
model.compile(optimizer="sgd",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = rng.integers(0, 256, size=(24, 8, 8, 3)).astype("uint8")
y = rng.integers(0, 3, size=24).astype("int32")
monitor = KNNMonitor((x, y), (x, y), 3, k=5, every_n_epochs=2)
history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[monitor])
assert sorted(monitor.results) == [2, 3], monitor.results
assert history.history["knn_accuracy"] == [monitor.results[2], monitor.results[3]]
assert monitor.results[3] == evaluate_knn(encoder, (x, y), (x, y), 3, k=5)
print("JAX_OK", monitor.results[3])
"""
    out = run_in_subprocess(code, backend="jax", extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "JAX_OK" in out, out


def test_float_images_in_0_255_are_refused_before_training():
    (images, labels), test = _colour_data(24, 8), _colour_data(12, 9)
    floats = images.astype("float32")
    with pytest.raises(
        ValueError, match=r"by 255.*train_data images with dtype=float32, min=0, max=2"
    ):
        KNNMonitor((floats, labels), test, num_classes=3)
    with pytest.raises(ValueError, match=r"by 255.*test_data images with dtype=float32"):
        KNNMonitor(test, (floats, labels), num_classes=3)
    # A dataset's values are read at the first evaluation.
    monitor = KNNMonitor(
        tf.data.Dataset.from_tensor_slices((floats, labels)).batch(8),
        test,
        3,
        encoder=_conv_encoder(),
    )
    with pytest.raises(ValueError, match=r"train_data images with dtype=float32.*max=2"):
        monitor.evaluate()


def test_labels_outside_num_classes_are_refused_before_training():
    (images, labels), test = _colour_data(24, 10), _colour_data(12, 11)
    labels = labels.copy()
    labels[4] = 5
    with pytest.raises(
        ValueError, match=r"train_data labels values \[5\] outside \[0, 3\), num_classes=3"
    ):
        KNNMonitor((images, labels), test, num_classes=3)
    monitor = KNNMonitor(
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(8),
        test,
        3,
        encoder=_conv_encoder(),
    )
    with pytest.raises(ValueError, match=r"train_data labels values \[5\].*num_classes=3"):
        monitor.evaluate()
