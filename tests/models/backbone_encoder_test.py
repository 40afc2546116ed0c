"""Any Keras backbone as the encoder: keras-hub image backbones and keras.applications models.

keras-hub backbones are built from a config (no preset download); a local
preset directory written by `save_to_preset` stands in for a download.
"""

import importlib
import os
import sys

import keras
import numpy as np
import pytest

from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.export import export_encoder
from keras_simclr.export import load_encoder
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import InputScaling
from keras_simclr.models import MoCoModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import check_encoder
from keras_simclr.models import create_encoder
from keras_simclr.models import pooled_encoder
from keras_simclr.models import synchronize_batchnorm
from keras_simclr.models.applications_encoder import application_names
from keras_simclr.models.applications_encoder import application_scaling
from tests.conftest import run_in_subprocess

keras_hub = pytest.importorskip("keras_hub")


def tiny_resnet_backbone(image_shape=(32, 32, 3)):
    """A two-stage keras-hub ResNetBackbone (keras-hub wants 64 filters in the first stage)."""
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=image_shape,
    )


def _model(encoder):
    return ContrastiveModel(
        encoder=encoder,
        projection_head=ProjectionHead(num_layers=2, output_dim=16),
        augmenter=SimCLRAugmentation(32, preset="cifar", seed=1),
        temperature=0.5,
    )


def _train_export_reload(model, cifar_images, tmp_path):
    images, _ = cifar_images
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [np.array(w) for w in model.encoder.get_weights()]
    history = model.fit(images[:8], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0
    after = model.encoder.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), "one step moved no weight"

    path = str(tmp_path / "encoder")
    metadata = export_encoder(model, path)
    assert metadata["image_size"] == [32, 32]
    queries = images[8:16].astype("float32") / 255.0
    expected = keras.ops.convert_to_numpy(model.encoder(queries, training=False))
    assert metadata["feature_dim"] == expected.shape[1]
    for encoder in (
        load_encoder(path),
        load_encoder(path, format="keras"),
        keras.saving.load_model(os.path.join(path, "encoder.keras")),
    ):
        got = keras.ops.convert_to_numpy(encoder(queries))
        np.testing.assert_allclose(got, expected, atol=1e-5)
    return expected


def test_keras_hub_resnet_backbone_trains_exports_and_reloads(cifar_images, tmp_path):
    keras.utils.set_random_seed(0)
    backbone = tiny_resnet_backbone()
    assert len(backbone.output.shape) == 4  # a feature map
    model = _model(backbone)
    # Pooled by the model itself: features (batch, 32).
    assert model.encoder.output.shape == (None, 32)
    assert model.encoder.layers[1] is backbone
    features = _train_export_reload(model, cifar_images, tmp_path)
    assert features.shape == (8, 32)
    reloaded = keras.saving.load_model(os.path.join(tmp_path, "encoder", "encoder.keras"))
    assert isinstance(reloaded.layers[1], keras_hub.models.ResNetBackbone)
    # The whole model (a checkpoint) round-trips through .keras too.
    model.save(tmp_path / "model.keras")
    whole = keras.saving.load_model(tmp_path / "model.keras")
    queries = cifar_images[0][8:16].astype("float32") / 255.0
    got = keras.ops.convert_to_numpy(whole.encoder(queries, training=False))
    np.testing.assert_allclose(got, features, atol=1e-5)


def test_moco_pools_a_raw_backbone_for_its_query_and_key_encoders(cifar_images):
    keras.utils.set_random_seed(0)
    model = MoCoModel(
        encoder=tiny_resnet_backbone(),
        projection_head=ProjectionHead(num_layers=2, output_dim=16),
        augmenter=SimCLRAugmentation(32, preset="cifar", seed=1),
        queue_size=16,
        shuffle_bn_splits=2,
    )
    # The key encoder is a copy of the pooled query encoder, not of the raw feature map.
    assert model.encoder.output.shape == (None, 32)
    assert model.key_encoder.output.shape == (None, 32)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(cifar_images[0][:8], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0


def test_keras_applications_model_trains_exports_and_reloads(cifar_images, tmp_path):
    keras.utils.set_random_seed(0)
    # MobileNet (v1) at width 0.25: the smallest graph of keras.applications.
    encoder = create_encoder("keras_applications:MobileNet", 32, alpha=0.25)
    assert encoder.name == "keras_applications_mobilenet"
    scaling = encoder.layers[1]
    # MobileNet's preprocess_input ("tf" style): [0, 1] -> [-1, 1].
    assert isinstance(scaling, InputScaling)
    assert (scaling.scale, scaling.offset) == ([2.0] * 3, [-1.0] * 3)
    features = _train_export_reload(_model(encoder), cifar_images, tmp_path)
    assert features.shape == (8, 256)


@pytest.mark.parametrize("name", ["ResNet50", "DenseNet121", "MobileNetV2", "EfficientNetB0"])
def test_application_scaling_is_the_family_preprocess_input(name):
    # caffe (BGR, mean), torch (mean, std), tf ([-1, 1]), none (0-255).
    module = importlib.import_module(getattr(keras.applications, name).__module__)
    images = np.random.default_rng(0).uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = module.preprocess_input(images * 255.0)
    got = keras.ops.convert_to_numpy(application_scaling(name)(images))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_every_application_name_has_a_scaling():
    names = application_names()
    assert {"ResNet50", "MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny"} <= set(names)
    reversed_channels = {n for n in names if application_scaling(n).reverse_channels}
    assert reversed_channels == {"ResNet50", "ResNet101", "ResNet152", "VGG16", "VGG19"}


def test_input_scaling_round_trips_its_config():
    layer = InputScaling(scale=[1.0, 2.0, 3.0], offset=-1.0, reverse_channels=True)
    copy = InputScaling.from_config(layer.get_config())
    images = np.random.default_rng(1).uniform(size=(2, 3, 3, 3)).astype("float32")
    expected = images[..., ::-1] * np.array([1.0, 2.0, 3.0]) - 1.0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(copy(images)), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"Received: scale=\[1, 2\]"):
        InputScaling(scale=[1, 2])


def save_tiny_preset(tmp_path_factory, seed):
    """A keras-hub preset directory (what `save_to_preset` writes; no network).

    Args:
        tmp_path_factory: pytest's, for the directory.
        seed: the seed of the backbone's initial weights.

    Returns:
        `(path, backbone)`: the preset directory, `tiny_resnet`, and the
        backbone saved there (any image size).
    """
    keras.utils.set_random_seed(seed)
    backbone = tiny_resnet_backbone(image_shape=(None, None, 3))
    path = str(tmp_path_factory.mktemp("preset") / "tiny_resnet")
    backbone.save_to_preset(path)
    return path, backbone


@pytest.fixture(scope="module")
def local_preset(tmp_path_factory):
    return save_tiny_preset(tmp_path_factory, seed=2)


def test_create_encoder_loads_a_local_preset(local_preset):
    path, backbone = local_preset
    encoder = create_encoder("keras_hub:" + path, 32)
    assert encoder.name == "keras_hub_tiny_resnet"
    assert encoder.input_shape == (None, 32, 32, 3)
    images = np.random.default_rng(3).uniform(size=(4, 32, 32, 3)).astype("float32")
    # No image_converter.json: the backbone sees the [0, 1] images as they are.
    expected = np.mean(keras.ops.convert_to_numpy(backbone(images, training=False)), axis=(1, 2))
    got = keras.ops.convert_to_numpy(encoder(images, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_preset_image_converter_becomes_the_input_scaling(local_preset, tmp_path):
    path, _ = local_preset
    copy = str(tmp_path / "with_converter")
    keras_hub.models.Backbone.from_preset(path).save_to_preset(copy)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    # Lists, as keras-hub's own presets hold them.
    converter = keras_hub.layers.ResNetImageConverter(
        scale=list(1 / (255 * std)), offset=list(-mean / std)
    )
    converter.save_to_preset(copy)
    scaling = create_encoder("keras_hub:" + copy, 32).layers[1]
    images = np.random.default_rng(4).uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = (images - mean) / std  # what the converter does to 255 * images
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scaling(images)), expected, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="synchronized BN is TF's")
def test_sync_batchnorm_rebuilds_every_batchnorm_synchronized(local_preset):
    path, backbone = local_preset
    encoder = create_encoder("keras_hub:" + path, 32, sync_batchnorm=True)
    batchnorms = [
        layer
        for layer in encoder._flatten_layers(recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(batchnorms) == 6 and all(layer.synchronized for layer in batchnorms)
    images = np.random.default_rng(5).uniform(size=(4, 32, 32, 3)).astype("float32")
    unsynced = create_encoder("keras_hub:" + path, 32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(images, training=False)),
        keras.ops.convert_to_numpy(unsynced(images, training=False)),
        atol=1e-6,
    )
    # The CLI copies a synchronized encoder's weights into an unsynchronized
    # one-device copy (kNN, export): same weights, same order.
    rng = np.random.default_rng(6)
    weights = [rng.normal(size=w.shape).astype("float32") for w in encoder.get_weights()]
    for weight, variable in zip(weights, encoder.weights):
        if "variance" in variable.path:
            weight[...] = np.abs(weight) + 0.5
    encoder.set_weights(weights)
    unsynced.set_weights(encoder.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(unsynced(images, training=False)),
        keras.ops.convert_to_numpy(encoder(images, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
    # A model without BatchNorm comes back as it is.
    plain = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1)])
    assert synchronize_batchnorm(plain) is plain


def test_pooled_encoder_refuses_a_backbone_that_is_not_an_image_model():
    inputs = {"tokens": keras.Input((8,), dtype="int32", name="tokens")}
    text = keras.Model(inputs, keras.layers.Embedding(10, 4)(inputs["tokens"]))
    with pytest.raises(ValueError, match="one input, a batch of RGB images.*Received: backbone"):
        pooled_encoder(text)
    with pytest.raises(ValueError, match="Received: backbone of type Dense"):
        pooled_encoder(keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"takes images of size \(32, 32\).*image_size=64"):
        pooled_encoder(tiny_resnet_backbone(), image_size=64)


# -- errors by name, one line each, naming what was received ---------------------------


def _one_line_error(name, match, image_size=32, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        create_encoder(name, image_size, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_unknown_keras_hub_preset():
    message = _one_line_error("keras_hub:resnet_9000", r"Unknown keras-hub preset")
    assert "resnet_18_imagenet" in message and "model='keras_hub:resnet_9000'" in message


def test_keras_hub_preset_without_network_says_how_to_pass_a_local_directory():
    # No network here: the download fails, whatever keras-hub's error is.
    message = _one_line_error(
        "keras_hub:resnet_18_imagenet", r"could not be fetched.*local preset directory"
    )
    assert "save_to_preset" in message and "model='keras_hub:resnet_18_imagenet'" in message


def test_missing_local_preset_directory(tmp_path):
    missing = str(tmp_path / "nowhere")
    _one_line_error("keras_hub:" + missing, rf"does not exist.*model='keras_hub:{missing}'")


def test_unknown_keras_applications_name():
    message = _one_line_error("keras_applications:ResNet9", r"Unknown keras.applications model")
    assert "MobileNetV3Small" in message and "model='keras_applications:ResNet9'" in message


def test_backbones_refuse_a_width_multiplier(local_preset):
    for name in ("keras_applications:ResNet50", "keras_hub:" + local_preset[0]):
        _one_line_error(
            name, r"built-in ResNets only.*width_multiplier=0.25", width_multiplier=0.25
        )


def test_an_application_refusing_its_image_size():
    _one_line_error(
        "keras_applications:ResNet50", r"refused its arguments.*image_size=16", image_size=16
    )


def test_keras_hub_not_installed(monkeypatch):
    # What an environment without keras-hub sees (import keras_simclr never needs it).
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r"pip install keras-simclr\[hub\].*model='keras_hub:x'"):
        create_encoder("keras_hub:x", 32)
    with pytest.raises(ValueError, match=r"pip install keras-simclr\[hub\]"):
        check_encoder("keras_hub:resnet_18_imagenet")


@pytest.mark.process
def test_keras_hub_is_imported_only_when_a_keras_hub_backbone_is_asked_for():
    # keras-hub is an optional extra: the models, the recipes and the other
    # backbones never import it (JAX backend: no TensorFlow in the way either).
    code = (
        "import sys, keras_simclr.models as models, keras_simclr.recipes as recipes\n"
        "recipes.validate('simclr', encoder='keras_applications:MobileNet')\n"
        "models.create_encoder('keras_applications:MobileNet', 32, alpha=0.25)\n"
        "print('keras_hub' in sys.modules)\n"
    )
    assert run_in_subprocess(code, backend="jax").split()[-1] == "False"
