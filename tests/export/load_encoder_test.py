"""load_encoder / load_export_metadata, the SavedModel's checkpoint, and a small JAX export."""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.export import export_encoder
from keras_simclr.export import load_encoder
from keras_simclr.export import load_export_metadata
from tests.conftest import run_in_subprocess


def _conv_encoder(input_shape=(16, 16, 3), seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, name="enc_conv")(inputs)
    x = keras.layers.BatchNormalization(name="enc_bn")(x)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    encoder = keras.Model(inputs, outputs, name="encoder")
    bn = encoder.get_layer("enc_bn")  # statistics that inference mode must use
    bn.moving_mean.assign(np.linspace(-0.2, 0.2, 8).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 8).astype("float32"))
    return encoder


class _WithHead(keras.Model):
    """A ContrastiveModel-like model: `.encoder` plus a Dense head."""

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = keras.layers.Dense(5, name="head_dense")

    def call(self, images):
        return self.head(self.encoder(images))


def _images(count=6, size=16, seed=0):
    return np.random.default_rng(seed).uniform(size=(count, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    encoder = _conv_encoder()
    model = _WithHead(encoder)
    model(_images())
    path = str(tmp_path_factory.mktemp("load") / "encoder")
    export_encoder(model, path)
    return encoder, model, path


def test_checkpoint_holds_exactly_the_encoder_variables(exported):
    encoder, model, path = exported
    saved = [
        tuple(shape)
        for name, shape in tf.train.list_variables(os.path.join(path, "variables", "variables"))
        if name.endswith("VARIABLE_VALUE")
    ]
    # Each encoder weight once (Keras's ExportArchive alone would store the
    # Keras variables and the tf.Variables inside them: every weight twice).
    assert sorted(saved) == sorted(tuple(v.shape) for v in encoder.variables)
    assert len(saved) == 6
    # The head's (8, 5) kernel and (5,) bias are nowhere in the SavedModel.
    assert len(model.head.variables) == 2
    assert not {(8, 5), (5,)} & set(saved)
    loaded = tf.saved_model.load(path)
    names = sorted(v.name for v in loaded.variables)
    assert len(names) == 6 and all(name.startswith(("enc_conv/", "enc_bn/")) for name in names)
    assert len(loaded.trainable_variables) == 4


@pytest.mark.process
def test_export_of_a_model_trained_under_mirrored_strategy(tmp_path):
    # As the command line does after multi-device training.
    path = str(tmp_path / "mirrored")
    code = f"""
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_simclr.export import export_encoder

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    encoder.compile(optimizer="sgd", loss="mse")
images = np.random.default_rng(0).uniform(size=(8, 8, 8, 3)).astype("float32")
encoder.fit(images, np.ones((8, 4), "float32"), batch_size=4, epochs=1, verbose=0)
np.save({str(tmp_path / "images.npy")!r}, images)
np.save({str(tmp_path / "expected.npy")!r}, np.asarray(encoder(images, training=False)))
export_encoder(encoder, {path!r})
print("EXPORTED")
"""
    out = run_in_subprocess(code, backend="tensorflow", extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "EXPORTED" in out
    images, expected = np.load(tmp_path / "images.npy"), np.load(tmp_path / "expected.npy")
    layer = load_encoder(path)
    assert len(layer.weights) == 6
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(images)), expected, atol=1e-5)


def test_load_encoder_formats(exported):
    encoder, _, path = exported
    images = _images(seed=1)
    expected = keras.ops.convert_to_numpy(encoder(images, training=False))
    frozen = load_encoder(path)
    assert isinstance(frozen, keras.layers.TFSMLayer)
    assert frozen.trainable_weights == [] and len(frozen.weights) == 6
    np.testing.assert_allclose(keras.ops.convert_to_numpy(frozen(images)), expected, atol=1e-5)
    trainable = load_encoder(path, trainable=True)
    assert len(trainable.trainable_weights) == len(encoder.trainable_weights) == 4
    as_keras = load_encoder(path, format="keras")
    assert isinstance(as_keras, keras.Model) and not as_keras.trainable
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(as_keras(images, training=False)), expected, atol=1e-6
    )
    with pytest.raises(ValueError, match="format='onnx'"):
        load_encoder(path, format="onnx")
    with pytest.raises(ValueError, match="nowhere"):
        load_encoder(os.path.join(path, "nowhere"))


def test_image_size_is_recorded_in_the_saved_model_and_the_json(exported, tmp_path):
    _, _, path = exported
    assert load_export_metadata(path)["image_size"] == [16, 16]
    loaded = tf.saved_model.load(path)
    assert loaded.image_size().numpy().tolist() == [16, 16]
    spec = loaded.signatures["serve"].structured_input_signature[1]
    assert [tuple(s.shape) for s in spec.values()] == [(None, 16, 16, 3)]
    # Without the JSON file the size is read from the SavedModel endpoint.
    copy = str(tmp_path / "copy")
    shutil.copytree(path, copy)
    os.remove(os.path.join(copy, "keras_simclr.json"))
    assert load_export_metadata(copy) == {"image_size": [16, 16]}


def test_dynamic_input_size_needs_image_size(tmp_path):
    encoder = _conv_encoder(input_shape=(None, None, 3), seed=2)
    with pytest.raises(ValueError, match="image_size=None"):
        export_encoder(encoder, str(tmp_path / "a"))
    with pytest.raises(ValueError, match="image_size=0"):
        export_encoder(encoder, str(tmp_path / "b"), image_size=0)
    metadata = export_encoder(encoder, str(tmp_path / "c"), image_size=(12, 20))
    assert metadata["image_size"] == [12, 20] and metadata["feature_dim"] == 8
    images = _images(count=3, size=12)
    images = np.concatenate([images, images[:, :, :8]], axis=2)  # (3, 12, 20, 3)
    loaded = tf.saved_model.load(str(tmp_path / "c"))  # keep it alive while serving
    served = loaded.serve(images).numpy()
    np.testing.assert_allclose(
        served, keras.ops.convert_to_numpy(encoder(images, training=False)), atol=1e-5
    )


@pytest.mark.process
def test_small_encoder_exported_from_jax(tmp_path):
    images = _images(count=5, seed=3)
    np.save(tmp_path / "images.npy", images)
    path = str(tmp_path / "jax")
    code = f"""
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_simclr.export import export_encoder

keras.utils.set_random_seed(0)
inputs = keras.Input((16, 16, 3))
x = keras.layers.Conv2D(8, 3)(inputs)
x = keras.layers.BatchNormalization()(x)
outputs = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
encoder = keras.Model(inputs, outputs)
bn = encoder.layers[2]
bn.moving_mean.assign(np.linspace(-0.2, 0.2, 8).astype("float32"))
bn.moving_variance.assign(np.linspace(0.5, 2.0, 8).astype("float32"))
images = np.load({str(tmp_path / "images.npy")!r})
np.save({str(tmp_path / "expected.npy")!r}, np.asarray(encoder(images, training=False)))
metadata = export_encoder(encoder, {path!r})
assert metadata["backend"] == "jax" and metadata["image_size"] == [16, 16]
print("EXPORTED")
"""
    out = run_in_subprocess(code, backend="jax", extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "EXPORTED" in out
    expected = np.load(tmp_path / "expected.npy")
    assert np.abs(expected).max() > 1e-2
    # jax2tf output, reloaded in TensorFlow: same features, real variables.
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(loaded.serve(tf.constant(images)).numpy(), expected, atol=1e-5)
    assert loaded.image_size().numpy().tolist() == [16, 16]
    layer = load_encoder(path, trainable=True)
    assert len(layer.weights) == 6 and len(layer.trainable_weights) == 4
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(images)), expected, atol=1e-5)
    # Gradients flow through the converted function to its weights.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(images) ** 2)
    gradients = tape.gradient(loss, [w.value for w in layer.trainable_weights])
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in gradients) > 0
    # The .keras file written on JAX loads here, on TensorFlow.
    as_keras = load_encoder(path, format="keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(as_keras(images, training=False)), expected, atol=1e-5
    )
