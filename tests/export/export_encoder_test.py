"""Encoder export: SavedModel without the projection head, reloaded three ways."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.export import export_encoder
from keras_simclr.export import load_encoder
from keras_simclr.export import load_export_metadata
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import ResNet
from tests.conftest import run_in_subprocess


def _small_model(seed=1):
    keras.utils.set_random_seed(seed)
    return ContrastiveModel(
        encoder=ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=2, output_dim=32),
        augmenter=SimCLRAugmentation(32, preset="cifar", seed=seed),
        temperature=0.5,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A built ContrastiveModel with non-trivial BatchNorm statistics, exported."""
    model = _small_model()
    model.build((None, 32, 32, 3))
    assert model.projection_head.built
    rng = np.random.default_rng(0)
    for layer in model.encoder.layers:  # as after training: inference mode uses these
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.uniform(-0.1, 0.1, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
    path = str(tmp_path_factory.mktemp("export") / "encoder")
    metadata = export_encoder(model, path)
    return model, path, metadata


def _float_images(cifar_images, count=16, start=0):
    images, _ = cifar_images
    return images[start : start + count].astype("float32") / 255.0


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_saved_model_holds_the_encoder_variables_only(trained):
    model, path, _ = trained
    encoder_variables = model.encoder.variables
    head_variables = model.projection_head.variables
    assert len(head_variables) > 0
    loaded = tf.saved_model.load(path)
    assert len(loaded.variables) == len(encoder_variables)
    names = [v.name for v in loaded.variables]
    assert not any("projection_head" in name for name in names)
    # Every exported value is one of the encoder's weights; none is a head weight.
    exported = sorted(int(np.prod(v.shape)) for v in loaded.variables)
    assert exported == sorted(int(np.prod(v.shape)) for v in encoder_variables)
    total_exported = sum(float(np.sum(np.abs(v.numpy()))) for v in loaded.variables)
    total_encoder = sum(float(np.sum(np.abs(_np(v)))) for v in encoder_variables)
    assert total_exported == pytest.approx(total_encoder, rel=1e-6)


def test_reloaded_features_equal_the_in_memory_encoder(trained, cifar_images):
    model, path, _ = trained
    images = _float_images(cifar_images)
    expected = _np(model.encoder(images, training=False))
    assert expected.shape == (16, 64)
    # (No training=True call here: it would move the BatchNorm statistics of
    # the in-memory encoder away from the exported ones.)

    layer = keras.layers.TFSMLayer(path, call_endpoint="serve")
    np.testing.assert_allclose(_np(layer(images)), expected, atol=1e-5, rtol=1e-5)

    loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(images))
    assert served.dtype == tf.float32
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5, rtol=1e-5)


def test_metadata_file(trained):
    _, path, metadata = trained
    with open(os.path.join(path, "keras_simclr.json")) as f:
        written = json.load(f)
    assert written == metadata
    assert written["image_size"] == [32, 32]
    assert written["feature_dim"] == 64
    assert written["endpoint"] == "serve"


def test_keras_file_reloads_with_equal_features(trained, cifar_images):
    model, path, _ = trained
    images = _float_images(cifar_images)
    reloaded = keras.saving.load_model(os.path.join(path, "encoder.keras"))
    assert len(reloaded.variables) == len(model.encoder.variables)
    np.testing.assert_allclose(
        _np(reloaded(images, training=False)),
        _np(model.encoder(images, training=False)),
        atol=1e-5,
        rtol=1e-5,
    )


def test_load_encoder_returns_layer_and_metadata(trained, cifar_images):
    model, path, _ = trained
    layer = load_encoder(path)
    metadata = load_export_metadata(path)
    assert isinstance(layer, keras.layers.TFSMLayer)
    assert not layer.trainable_weights  # frozen by default
    assert metadata["image_size"] == [32, 32]
    # The size is also in the SavedModel itself, read without the JSON.
    assert tf.saved_model.load(path).image_size().numpy().tolist() == [32, 32]
    assert metadata["feature_dim"] == 64
    images = _float_images(cifar_images, 8, start=100)
    np.testing.assert_allclose(
        _np(layer(images)), _np(model.encoder(images, training=False)), atol=1e-5, rtol=1e-5
    )


def test_frozen_reloaded_encoder_trains_a_new_head(trained, cifar_images):
    _, path, _ = trained
    images, labels = cifar_images
    x = images[:96].astype("float32") / 255.0
    y = labels[:96]
    layer = load_encoder(path)
    layer.trainable = False
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    features = layer(inputs)
    outputs = keras.layers.Dense(10)(features)
    classifier = keras.Model(inputs, outputs)
    assert len(classifier.trainable_weights) == 2  # the Dense kernel and bias only
    encoder_before = [v.numpy().copy() for v in layer.non_trainable_weights]
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate=5e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = classifier.fit(x, y, batch_size=32, epochs=10, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.1, losses
    assert losses[-1] < np.log(10.0) - 0.05, losses  # below chance
    # The encoder stayed frozen.
    for before, after in zip(encoder_before, layer.non_trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_export_a_bare_encoder(tmp_path, cifar_images):
    keras.utils.set_random_seed(3)
    encoder = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    path = str(tmp_path / "bare")
    metadata = export_encoder(encoder, path)
    assert metadata["feature_dim"] == 64
    images = _float_images(cifar_images, 8)
    loaded = tf.saved_model.load(path)
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, _np(encoder(images, training=False)), atol=1e-5, rtol=1e-5)
    assert len(loaded.variables) == len(encoder.variables)


def test_export_rejects_non_models(tmp_path):
    with pytest.raises(ValueError, match="Received: str"):
        export_encoder("not a model", str(tmp_path / "x"))
    with pytest.raises(ValueError, match="Received: Dense"):
        export_encoder(keras.layers.Dense(3), str(tmp_path / "y"))
    assert not os.path.exists(tmp_path / "x")


@pytest.mark.process
def test_export_from_the_jax_backend(tmp_path, cifar_images):
    images = _float_images(cifar_images, 8)
    np.save(tmp_path / "images.npy", images)
    path = str(tmp_path / "jax_encoder")
    code = f"""
import numpy as np
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
from keras_simclr.export import export_encoder
from keras_simclr.models import ResNet

keras.utils.set_random_seed(0)
encoder = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
for layer in encoder.layers:  # inference-mode BatchNorm must use these
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.05, "float32"))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 1.5, "float32"))
images = np.load({str(tmp_path / "images.npy")!r})
expected = np.asarray(encoder(images, training=False))
metadata = export_encoder(encoder, {path!r})

import tensorflow as tf
loaded = tf.saved_model.load({path!r})
served = loaded.serve(tf.constant(images)).numpy()
assert served.shape == expected.shape == (8, 64), (served.shape, expected.shape)
print("MAXDIFF", float(np.abs(served - expected).max()))
print("SCALE", float(np.abs(expected).max()))
print("VARIABLES", len(loaded.variables), len(encoder.variables))
print("FEATURE_DIM", metadata["feature_dim"])
"""
    out = run_in_subprocess(code, backend="jax", extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    values = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line and line.split()[0].isupper()
    }
    assert float(values["MAXDIFF"][0]) < 1e-4, out
    assert float(values["SCALE"][0]) > 1e-2, out
    assert values["VARIABLES"][0] == values["VARIABLES"][1]
    assert values["FEATURE_DIM"] == ["64"]
    # The JAX-exported SavedModel also reloads in this TensorFlow process.
    layer = keras.layers.TFSMLayer(path, call_endpoint="serve")
    served = _np(layer(images))
    assert served.shape == (8, 64)
    assert np.all(np.isfinite(served))
