import json
import os
import subprocess
import sys

import keras
import pytest

from keras_simclr.cli import evaluate
from keras_simclr.cli.flag_config import flag_names
from keras_simclr.export import export_encoder
from keras_simclr.models import ResNet
from tests.conftest import REPO_ROOT


def _config(**overrides):
    config = {name: None for name in flag_names(evaluate.define_flags)}
    config.update(
        model="resnet18_cifar",
        train_split="train",
        eval_split="test",
        label_fraction=1.0,
        epochs=2,
        batch_size=64,
        optimizer="sgd",
        augment=False,
        seed=0,
        verbose=0,
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    encoder = ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    path = str(tmp_path_factory.mktemp("export") / "encoder")
    export_encoder(encoder, path)
    return path


@pytest.mark.slow
def test_linear_eval_of_an_exported_encoder_writes_its_result(cifar_folder, exported, tmp_path):
    output = str(tmp_path / "linear.json")
    summary = evaluate.run_evaluation(
        _config(encoder=exported, image_folder=cifar_folder, output=output), "linear_eval"
    )
    with open(output) as f:
        assert json.load(f) == summary
    assert summary["train_examples"] == 200 and summary["mode"] == "linear_eval"
    assert 0.0 <= summary["top1"] <= summary["top5"] <= 1.0
    # Random-init features of real images already beat the 0.5 top-5 chance.
    assert summary["top5"] > 0.5


@pytest.mark.slow
def test_finetune_on_a_balanced_label_fraction(cifar_folder, exported):
    summary = evaluate.run_evaluation(
        _config(encoder=exported, image_folder=cifar_folder, label_fraction=0.5, epochs=1),
        "finetune",
    )
    # 20 images per class, half of them: 10 per class.
    assert summary["train_examples"] == 100
    assert 0.0 <= summary["top1"] <= summary["top5"] <= 1.0


def test_missing_encoder_and_bad_sources_are_clear_errors(cifar_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported encoder"):
        evaluate.run_evaluation(
            _config(encoder=str(tmp_path), image_folder=cifar_folder), "linear_eval"
        )
    with pytest.raises(ValueError, match="exactly one of --dataset and --image_folder"):
        evaluate.run_evaluation(_config(), "linear_eval")


@pytest.mark.process
def test_console_script_runs_linear_eval(cifar_folder, exported):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_simclr.cli.main",
            "linear_eval",
            "--encoder",
            exported,
            "--image_folder",
            cifar_folder,
            "--epochs",
            "1",
            "--noaugment",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "linear_eval" and 0.0 <= summary["top1"] <= 1.0
