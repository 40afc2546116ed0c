"""`pretrain --micro_batch_size` (gradient caching) and the memory flags' up-front errors."""

import json
import os

import keras
import pytest

from keras_simclr.cli import pretrain
from keras_simclr.cli.errors import CLIError
from keras_simclr.cli.training import _check_batch_split
from tests.cli.pretrain_test import _config


def _tiny(folder, output, **overrides):
    # 30 training images at batch 16: one step of two chunks of 8 per epoch.
    config = dict(image_folder=folder, output_dir=output, batch_size=16, epochs=1, knn_every=0)
    config.update(overrides)
    return _config(**config)


@pytest.mark.slow
def test_micro_batch_size_trains_is_recorded_and_resumes(tiny_folder, tmp_path):
    output = str(tmp_path / "run")
    metrics = pretrain.run_pretraining(_tiny(tiny_folder, output, micro_batch_size=8))
    assert metrics["micro_batch_size"] == 8 and metrics["optimizer_iterations"] == 1
    with open(os.path.join(output, "config.json")) as f:
        recorded = json.load(f)
    assert recorded["flags"]["micro_batch_size"] == 8
    assert recorded["resolved"]["micro_batch_size"] == 8
    assert recorded["resolved"]["memory_size"] == 0
    model = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert model.micro_batch_size == 8

    # Unset on resume: the recorded chunks are used.
    resumed = pretrain.run_pretraining(_tiny(tiny_folder, output, epochs=2))
    assert resumed["initial_epoch"] == 1 and resumed["optimizer_iterations"] == 2
    assert resumed["micro_batch_size"] == 8
    model = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert model.micro_batch_size == 8

    # Another chunk size is another training: refused like any such flag.
    with pytest.raises(CLIError, match=r"--micro_batch_size 8 -> 4"):
        pretrain.run_pretraining(_tiny(tiny_folder, output, epochs=3, micro_batch_size=4))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"batch_size": 100, "micro_batch_size": 64},
            "--micro_batch_size must divide the batch size.*"
            r"Received: micro_batch_size=64, batch_size=100$",
        ),
        ({"micro_batch_size": 0}, "Received: micro_batch_size=0$"),
        (
            {"method": "simclr_v2", "memory_size": 16},
            "--memory_size must hold.*2 x the global batch size.*"
            r"Received: memory_size=16, batch_size=16$",
        ),
        (
            {"memory_momentum": 0.99},
            r"needs memory_size > 0\. Received: memory_momentum=0\.99, memory_size=None$",
        ),
        (
            {"method": "moco_v2", "queue_size": 64, "memory_size": 256},
            r"--memory_size is SimCLR v2's .*use queue_size\. "
            r"Received: method='moco_v2', memory_size=256$",
        ),
        (
            {"method": "moco_v2", "queue_size": 64, "memory_momentum": 0.99},
            r"--memory_momentum .*use moco_momentum\. "
            r"Received: method='moco_v2', memory_momentum=0\.99$",
        ),
        (
            {"method": "moco_v2", "queue_size": 64, "micro_batch_size": 8},
            r"--micro_batch_size .* Received: method='moco_v2', micro_batch_size=8$",
        ),
    ],
)
def test_chunk_and_memory_flags_fail_up_front_on_one_line(tiny_folder, tmp_path, overrides, match):
    output = str(tmp_path / "run")
    with pytest.raises(pretrain.PretrainError, match=match) as raised:
        pretrain.run_pretraining(_tiny(tiny_folder, output, **overrides))
    assert "\n" not in str(raised.value)
    assert not os.path.exists(os.path.join(output, "config.json"))


def test_micro_batch_size_must_divide_the_per_replica_batch():
    config = _config(batch_size=32, micro_batch_size=16)
    _check_batch_split(config, 2)  # 16 images per replica: one chunk each
    with pytest.raises(
        pretrain.PretrainError,
        match=r"per-replica batch.*Received: micro_batch_size=16, batch_size=32 over 4 replica",
    ):
        _check_batch_split(config, 4)
