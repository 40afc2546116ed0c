import keras
import numpy as np
import pytest

from keras_simclr.models import ResNet


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize(
    "depth, cifar_stem, expected",
    [
        # torchvision's resnet18/resnet50 without the final fc layer
        # (11,689,512 - 513,000 and 25,557,032 - 2,049,000): same convs
        # without bias, same BatchNorm gamma/beta.
        (18, False, 11_176_512),
        (50, False, 23_508_032),
        # CIFAR stem: a 3x3x3x64 conv (1,728) instead of 7x7x3x64 (9,408).
        (18, True, 11_176_512 - 9_408 + 1_728),
    ],
)
def test_parameter_counts_match_reference(depth, cifar_stem, expected):
    model = ResNet(depth=depth, cifar_stem=cifar_stem)
    assert _trainable_count(model) == expected


@pytest.mark.parametrize(
    "depth, width, image, features",
    [(18, 1, 32, 512), (34, 0.25, 32, 128), (50, 0.25, 64, 512), (18, 2, 32, 1024)],
)
def test_output_shape(depth, width, image, features):
    model = ResNet(
        depth=depth,
        width_multiplier=width,
        cifar_stem=image == 32,
        input_shape=(image, image, 3),
    )
    out = model(np.random.uniform(size=(2, image, image, 3)).astype("float32"))
    assert tuple(out.shape) == (2, features)
    assert model.feature_dim == features


def test_deeper_variants_build_with_expected_block_counts():
    for depth, blocks in [(101, 33), (152, 50)]:
        model = ResNet(depth=depth, width_multiplier=0.125)
        adds = [l for l in model.layers if isinstance(l, keras.layers.Add)]
        assert len(adds) == blocks


def test_cifar_stem_keeps_resolution_imagenet_stem_reduces_it():
    cifar = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    imagenet = ResNet(depth=18, width_multiplier=0.125, input_shape=(64, 64, 3))
    assert cifar.get_layer("stem_relu").output.shape[1:3] == (32, 32)
    assert imagenet.get_layer("stem_pool").output.shape[1:3] == (16, 16)
    assert "stem_pool" not in [l.name for l in cifar.layers]


def test_batchnorm_settings_and_zero_init_residual():
    model = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, sync_batchnorm=True)
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(l.momentum == 0.9 and l.epsilon == 1e-5 for l in norms)
    assert all(l.synchronized for l in norms)
    last = model.get_layer("stage1_block1_bn2")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(last.gamma), 0.0)
    first = model.get_layer("stage1_block1_bn1")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first.gamma), 1.0)


def test_errors_name_the_received_value():
    with pytest.raises(ValueError, match="depth=20"):
        ResNet(depth=20)
    with pytest.raises(ValueError, match="width_multiplier=0"):
        ResNet(depth=18, width_multiplier=0)
    for width in (-0.5, float("nan"), None, 0.01):  # 0.01: int(64 * 0.01) == 0 channels
        with pytest.raises(ValueError, match=f"Received: width_multiplier={width}"):
            ResNet(depth=18, width_multiplier=width)
    with pytest.raises(ValueError, match=r"input_shape=\(32, 32, 1\)"):
        ResNet(depth=18, input_shape=(32, 32, 1))


def test_config_round_trip_and_keras_file(tmp_path):
    model = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    config = model.get_config()
    clone = ResNet.from_config(config)
    assert clone.get_config() == config
    images = np.random.uniform(size=(3, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "resnet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ResNet)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images)),
        keras.ops.convert_to_numpy(model(images)),
        atol=1e-6,
    )
