"""linear_evaluation's two modes, optimizers, and what it leaves untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.evaluation import linear_evaluation
from tests.conftest import run_in_subprocess


def _colour_data(count, seed, size=12):
    """uint8 images whose class is the brightest channel: linearly separable."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=count).astype("int32")
    images = rng.integers(0, 50, size=(count, size, size, 3))
    images[np.arange(count), :, :, labels] += 180
    return images.astype("uint8"), labels


def _conv_encoder(seed=0, size=12):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, name="enc_conv")(inputs)
    x = keras.layers.BatchNormalization(name="enc_bn")(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="encoder")


@pytest.mark.parametrize("augment", [False, True])
def test_both_modes_separate_a_separable_set(augment):
    train, test = _colour_data(240, 0), _colour_data(90, 1)
    result = linear_evaluation(
        _conv_encoder(), train, test, num_classes=3, epochs=8, batch_size=32, augment=augment
    )
    assert result["top1"] >= 0.98, result["top1"]
    assert result["top5"] == 1.0
    assert len(result["train_loss"]) == 8
    assert result["train_loss"][-1] < result["train_loss"][0]
    # The classifier maps features h to logits; its test predictions are top1.
    features = keras.ops.convert_to_numpy(_conv_encoder()(test[0] / 255.0, training=False))
    logits = result["classifier"].predict(features, verbose=0)
    assert logits.shape == (90, 3)
    assert np.mean(logits.argmax(axis=1) == test[1]) == pytest.approx(result["top1"])


def test_dataset_input_without_standardization():
    (x_train, y_train), test = _colour_data(240, 2), _colour_data(90, 3)
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(240, seed=0).batch(32)
    result = linear_evaluation(
        _conv_encoder(seed=1),
        train,
        test,
        num_classes=3,
        epochs=6,
        learning_rate=1.0,
        standardize_features=False,
    )
    assert [layer.name for layer in result["classifier"].layers] == ["linear"]
    assert result["top1"] >= 0.98, result["top1"]
    assert len(result["history"]["loss"]) == 6


def test_lars_and_an_optimizer_instance():
    train, test = _colour_data(240, 4), _colour_data(90, 5)
    encoder = _conv_encoder(seed=2)
    # LARS (imported lazily) runs; its trust ratio eeta * |w| / |g| makes
    # small steps, so a short run only lowers the loss.
    lars = linear_evaluation(encoder, train, test, 3, epochs=4, optimizer="lars", augment=False)
    assert lars["train_loss"][-1] < lars["train_loss"][0], lars["train_loss"]
    adam = linear_evaluation(
        encoder, train, test, 3, epochs=4, optimizer=keras.optimizers.Adam(0.05), augment=False
    )
    assert adam["top1"] >= 0.98, adam["top1"]


def test_encoder_weights_and_trainable_flags_are_left_as_they_were():
    encoder = _conv_encoder(seed=4)
    # Moving statistics that inference mode uses; a layer frozen beforehand.
    bn = encoder.get_layer("enc_bn")
    bn.moving_mean.assign(np.full((8,), 0.2, "float32"))
    bn.moving_variance.assign(np.full((8,), 3.0, "float32"))
    encoder.get_layer("enc_conv").trainable = False
    before = [w.copy() for w in encoder.get_weights()]
    flags = {layer.name: layer.trainable for layer in encoder.layers}
    trainable_count = len(encoder.trainable_weights)
    train, test = _colour_data(64, 5), _colour_data(32, 6)
    linear_evaluation(encoder, train, test, 3, epochs=2, batch_size=16, weight_decay=1e-2)
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert {layer.name: layer.trainable for layer in encoder.layers} == flags
    assert flags["enc_conv"] is False and encoder.trainable
    assert len(encoder.trainable_weights) == trainable_count == 2  # BN gamma and beta


def test_errors_name_what_was_received():
    data = _colour_data(16, 7)
    encoder = _conv_encoder()
    with pytest.raises(ValueError, match="optimizer='adam'"):
        linear_evaluation(encoder, data, data, 3, epochs=1, optimizer="adam")
    with pytest.raises(ValueError, match="num_classes=1"):
        linear_evaluation(encoder, data, data, 1)
    with pytest.raises(ValueError, match="Received: str"):
        linear_evaluation("encoder", data, data, 3)
    with pytest.raises(ValueError, match="Received: list"):
        linear_evaluation(encoder, [data[0]], data, 3)


@pytest.mark.process
def test_linear_evaluation_on_jax():
    code = """
import sys
sys.modules["tensorflow"] = None
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_simclr.evaluation import linear_evaluation

rng = np.random.default_rng(0)
def data(count):
    labels = rng.integers(0, 3, size=count).astype("int32")
    images = rng.integers(0, 50, size=(count, 12, 12, 3))
    images[np.arange(count), :, :, labels] += 180
    return images.astype("uint8"), labels

keras.utils.set_random_seed(0)
inputs = keras.Input((12, 12, 3))
x = keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3)(inputs))
encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
before = [w.copy() for w in encoder.get_weights()]
result = linear_evaluation(encoder, data(240), data(90), 3, epochs=6, batch_size=32)
assert all(np.array_equal(a, b) for a, b in zip(before, encoder.get_weights()))
print("TOP1", result["top1"])
"""
    out = run_in_subprocess(code, backend="jax", extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    top1 = float(out.split("TOP1")[1].split()[0])
    assert top1 >= 0.95, out
