"""`pretrain --model keras_hub:<preset>` / `keras_applications:<name>` from the command line."""

import json
import os
import re
import subprocess

import keras
import numpy as np
import pytest

from keras_simclr.cli import pretrain
from keras_simclr.export import load_encoder
from tests.cli.error_contract_test import _fails_with_one_line
from tests.cli.pretrain_test import _config
from tests.cli.tiny_run import TINY_ANY_MODEL
from tests.cli.tiny_run import pretrain_command
from tests.cli.tiny_run import tiny_env
from tests.conftest import decode_cifar

keras_hub = pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def local_preset(tmp_path_factory):
    from tests.models.backbone_encoder_test import save_tiny_preset

    return save_tiny_preset(tmp_path_factory, seed=3)


@pytest.mark.process
def test_pretrain_a_local_keras_hub_preset_and_export_it(cifar_folder, local_preset, tmp_path):
    path, backbone = local_preset
    output = tmp_path / "run"
    command = pretrain_command(
        cifar_folder,
        output,
        "--model",
        "keras_hub:" + path,
        "--train_examples",
        "64",
        "--batch_size",
        "16",
        "--epochs",
        "1",
        tiny=TINY_ANY_MODEL,
    )
    result = subprocess.run(command, env=tiny_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    flags = json.loads((output / "config.json").read_text())["flags"]
    assert flags["model"] == "keras_hub:" + path
    metadata = json.loads((output / "encoder" / "keras_simclr.json").read_text())
    assert metadata["feature_dim"] == 32 and metadata["image_size"] == [32, 32]
    assert metadata["encoder"] == "keras_hub_tiny_resnet"

    images = decode_cifar("test", 8)[0].astype("float32") / 255.0
    served = keras.ops.convert_to_numpy(load_encoder(str(output / "encoder"))(images))
    reloaded = keras.saving.load_model(str(output / "encoder" / "encoder.keras"))
    assert isinstance(reloaded.layers[1], keras_hub.models.ResNetBackbone)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(images)), served, atol=1e-5)
    # Trained: the exported backbone is no longer the preset's.
    initial = np.mean(keras.ops.convert_to_numpy(backbone(images, training=False)), axis=(1, 2))
    assert np.abs(served - initial).max() > 1e-3


@pytest.mark.parametrize(
    "model, received",
    [
        ("keras_hub:resnet_9000", "Unknown keras-hub preset"),
        ("keras_applications:ResNet9", "Unknown keras.applications model"),
        ("keras_hub:resnet_18_imagenet", "could not be fetched.*local preset directory"),
    ],
)
def test_bad_backbone_models_are_one_line_errors(capsys, cifar_folder, tmp_path, model, received):
    config = _config(
        image_folder=cifar_folder,
        output_dir=str(tmp_path / "run"),
        model=model,
        width_multiplier=None,
        train_examples=64,
        batch_size=16,
    )
    line = _fails_with_one_line(capsys, pretrain.run_pretraining, config)
    assert f"model='{model}'" in line
    assert re.search(received, line), line


def test_a_backbone_refuses_width_multiplier_on_the_command_line(capsys, cifar_folder, tmp_path):
    config = _config(
        image_folder=cifar_folder,
        output_dir=str(tmp_path / "run"),
        model="keras_applications:MobileNet",
        width_multiplier=0.25,
    )
    line = _fails_with_one_line(capsys, pretrain.run_pretraining, config)
    assert line.startswith("error: --width_multiplier applies to the built-in ResNets only"), line
    assert not os.path.exists(tmp_path / "run" / "config.json")
