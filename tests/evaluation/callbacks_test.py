"""KNNMonitor, CollapseAlarm and NonFiniteLossGuard inside and outside `fit`."""

import types
import warnings

import keras
import numpy as np
import pytest

from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.evaluation import CollapseAlarm
from keras_simclr.evaluation import KNNMonitor
from keras_simclr.evaluation import NonFiniteLossError
from keras_simclr.evaluation import NonFiniteLossGuard
from keras_simclr.evaluation import evaluate_knn
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import ResNet


def _small_model(seed=1):
    keras.utils.set_random_seed(seed)
    return ContrastiveModel(
        encoder=ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=2, output_dim=32),
        augmenter=SimCLRAugmentation(32, preset="cifar", seed=seed),
        temperature=0.5,
    )


# ## KNNMonitor


@pytest.mark.slow
def test_knn_monitor_every_two_epochs_and_the_last(cifar_images):
    images, labels = cifar_images
    train, test = (images[:64], labels[:64]), (images[64:96], labels[64:96])
    model = _small_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    monitor = KNNMonitor(train, test, num_classes=10, k=20, every_n_epochs=2)
    history = model.fit(images[:64], batch_size=32, epochs=3, verbose=0, callbacks=[monitor])
    # Epoch 2 (the period) and epoch 3 (the last), not epoch 1.
    assert sorted(monitor.results) == [2, 3]
    assert len(history.history["loss"]) == 3
    np.testing.assert_allclose(
        history.history["knn_accuracy"], [monitor.results[2], monitor.results[3]]
    )
    # 32 queries over 10 classes: a multiple of 1/32 in [0, 1].
    for value in monitor.results.values():
        assert 0.0 <= value <= 1.0
        assert value * 32 == pytest.approx(round(value * 32))
    # The last value is the kNN accuracy of the trained encoder.
    assert monitor.results[3] == pytest.approx(
        evaluate_knn(model.encoder, train, test, num_classes=10, k=20)
    )


def test_knn_monitor_with_an_explicit_encoder_and_bad_period(cifar_images):
    images, labels = cifar_images
    encoder = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    monitor = KNNMonitor(
        (images[:40], labels[:40]), (images[40:60], labels[40:60]), 10, k=5, encoder=encoder
    )
    monitor.set_params({"epochs": 5})
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert list(monitor.results) == [1]
    assert logs["knn_accuracy"] == monitor.results[1]
    assert logs["knn_accuracy"] == pytest.approx(
        evaluate_knn(encoder, (images[:40], labels[:40]), (images[40:60], labels[40:60]), 10, k=5)
    )
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        KNNMonitor((images, labels), (images, labels), 10, every_n_epochs=0)
    with pytest.raises(ValueError, match="k=0"):
        KNNMonitor((images, labels), (images, labels), 10, k=0)
    with pytest.raises(ValueError, match="temperature=0"):
        KNNMonitor((images, labels), (images, labels), 10, temperature=0)
    with pytest.raises(ValueError, match="num_classes=1"):
        KNNMonitor((images, labels), (images, labels), 1)


# ## CollapseAlarm


def _alarm(output_dim=128, **kwargs):
    alarm = CollapseAlarm(**kwargs)
    model = types.SimpleNamespace(projection_head=types.SimpleNamespace(output_dim=output_dim))
    alarm.set_model(model)
    return alarm


def test_collapse_alarm_warns_on_tiny_spread():
    alarm = _alarm(128)
    with pytest.warns(RuntimeWarning, match="epoch 4") as record:
        alarm.on_epoch_end(3, {"loss": 4.8, "z_std": 1e-4})
    assert len(record) == 1
    assert "z_std" in str(record[0].message)
    assert alarm.alarms == [4]


def test_collapse_alarm_silent_when_healthy_or_missing():
    alarm = _alarm(128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alarm.on_epoch_end(0, {"z_std": 1.0 / np.sqrt(128)})  # spread over the sphere
        alarm.on_epoch_end(1, {"loss": 1.0})  # nothing to read
        alarm.on_epoch_end(2, None)
    assert alarm.alarms == []


def test_collapse_alarm_threshold_scales_with_dimension():
    # Floor = threshold / sqrt(d): 0.1 / sqrt(100) = 0.01.
    alarm = _alarm(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alarm.on_epoch_end(0, {"z_std": 0.0101})
    with pytest.warns(RuntimeWarning):
        alarm.on_epoch_end(1, {"z_std": 0.0099})
    # The same value with d = 4 (floor 0.05) and threshold 0.5 (floor 0.25).
    with pytest.warns(RuntimeWarning):
        _alarm(4).on_epoch_end(0, {"z_std": 0.02})
    with pytest.warns(RuntimeWarning, match="monitor_me"):
        _alarm(4, threshold=0.5, monitor="monitor_me").on_epoch_end(0, {"monitor_me": 0.2})
    assert alarm.alarms == [2]


@pytest.mark.slow
def test_collapse_alarm_reads_z_std_of_a_real_fit(cifar_images):
    # A healthy model trained for one epoch raises no alarm.
    images, _ = cifar_images
    model = _small_model(seed=2)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01))
    alarm = CollapseAlarm()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = model.fit(images[:32], batch_size=32, epochs=1, verbose=0, callbacks=[alarm])
    assert history.history["z_std"][0] > 0.1 / np.sqrt(32)
    assert alarm.alarms == []


# ## NonFiniteLossGuard


def _tiny_regressor():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    return model


def _regression_data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]
    return x, y


def test_guard_raises_at_the_first_nan_step():
    model = _tiny_regressor()
    x, y = _regression_data()
    y[20, 0] = np.nan  # batch size 8: the 3rd step of the epoch
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step 3\b") as error:
        model.fit(
            x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[NonFiniteLossGuard()]
        )
    assert "nan" in str(error.value)
    assert isinstance(error.value, FloatingPointError)
    assert model.stop_training


def test_guard_names_later_epochs():
    model = _tiny_regressor()
    x, y = _regression_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[NonFiniteLossGuard()])
    y[0, 0] = np.nan
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, step 1\b"):
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=3,
            initial_epoch=1,
            shuffle=False,
            verbose=0,
            callbacks=[NonFiniteLossGuard()],
        )


def test_guard_raises_when_a_huge_learning_rate_diverges():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e30), loss="mse")
    x, y = _regression_data(64)
    with pytest.raises(
        NonFiniteLossError, match=r"Non-finite loss \((nan|inf)\) at epoch 1, step \d+"
    ):
        model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[NonFiniteLossGuard()])


def test_guard_silent_on_finite_losses():
    model = _tiny_regressor()
    x, y = _regression_data()
    guard = NonFiniteLossGuard()
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[guard])
    assert len(history.history["loss"]) == 3
    assert all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not model.stop_training
