"""`pretrain --micro_batch_size` (gradient caching) and `--memory_size` (SimCLR v2's memory)."""

import json
import os
import re

import keras
import numpy as np
import pytest

from keras_simclr.cli import pretrain
from keras_simclr.cli.errors import CLIError
from keras_simclr.cli.training import _check_batch_split
from tests.cli.error_contract_test import _fails_with_one_line
from tests.cli.pretrain_test import _config


def _tiny(folder, output, **overrides):
    # 30 training images at batch 16: one step of two chunks of 8 per epoch.
    config = dict(image_folder=folder, output_dir=output, batch_size=16, epochs=1, knn_every=0)
    config.update(overrides)
    return _config(**config)


@pytest.mark.slow
def test_chunks_and_memory_train_are_recorded_and_resume(tiny_folder, tmp_path):
    """`--method simclr_v2 --memory_size 256 --micro_batch_size 8`: one run covers both
    (each tiny run costs CI time): recorded, kept on resume, the queue restored."""
    output = str(tmp_path / "run")
    # The 30 training images without their split layout: unlabelled, no kNN to wait
    # for. At batch 16: one step an epoch, of two chunks of 8 images, writing 32
    # momentum projections (both views) to the memory.
    config = _tiny(
        os.path.join(tiny_folder, "train"),
        output,
        method="simclr_v2",
        head_layers=None,
        micro_batch_size=8,
        memory_size=256,
    )
    metrics = pretrain.run_pretraining(config)
    assert metrics["optimizer_iterations"] == 1 and metrics["knn_accuracy"] is None
    with open(os.path.join(output, "config.json")) as f:
        recorded = json.load(f)
    for name, value in (("micro_batch_size", 8), ("memory_size", 256)):
        assert recorded["flags"][name] == value and recorded["resolved"][name] == value, name
    assert recorded["resolved"]["memory_momentum"] == 0.999
    first = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert (first.micro_batch_size, first.memory_size, first.memory_momentum) == (8, 256, 0.999)
    assert int(first.memory_pointer) == 32
    queue_1 = np.array(first.memory_queue)
    momentum_1 = [np.array(w) for w in first.momentum_encoder.weights]

    # Resumed with both flags unset: the recorded chunks and memory go on.
    resumed = pretrain.run_pretraining(
        dict(config, epochs=2, micro_batch_size=None, memory_size=None)
    )
    assert resumed["initial_epoch"] == 1 and resumed["optimizer_iterations"] == 2
    assert (resumed["micro_batch_size"], resumed["memory_size"]) == (8, 256)
    second = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert (second.micro_batch_size, second.memory_size) == (8, 256)
    assert int(second.memory_pointer) == 64
    queue_2 = np.array(second.memory_queue)
    # The first epoch's rows and the rows not written yet are the restored ones;
    # the resumed step wrote the next 32 after them.
    np.testing.assert_array_equal(queue_2[:32], queue_1[:32])
    np.testing.assert_array_equal(queue_2[64:], queue_1[64:])
    assert not np.allclose(queue_2[32:64], queue_1[32:64])
    np.testing.assert_allclose(np.linalg.norm(queue_2[:64], axis=1), 1.0, rtol=1e-5)
    # The momentum encoder went on from its restored moving average.
    weights_2 = second.momentum_encoder.weights
    assert any(not np.allclose(a, np.array(b)) for a, b in zip(momentum_1, weights_2))

    # Other chunks or another memory is another training: refused like any such flag.
    for name, value, shown in (
        ("micro_batch_size", 4, "8 -> 4"),
        ("memory_size", 512, "256 -> 512"),
    ):
        with pytest.raises(CLIError, match=f"--{name} {shown}"):
            pretrain.run_pretraining(dict(config, epochs=3, **{name: value}))


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
            {"method": "moco_v2", "queue_size": 64, "micro_batch_size": 6},
            r"Received: micro_batch_size=6, batch_size=16$",
        ),
    ],
)
def test_chunk_and_memory_flags_fail_up_front_on_one_line(
    capsys, tiny_folder, tmp_path, overrides, match
):
    output = str(tmp_path / "run")
    config = _tiny(tiny_folder, output, **overrides)
    line = _fails_with_one_line(capsys, pretrain.run_pretraining, config)
    assert re.search(match, line), line
    assert not os.path.exists(os.path.join(output, "config.json"))


def test_micro_batch_size_must_divide_the_per_replica_batch():
    config = _config(batch_size=32, micro_batch_size=16)
    _check_batch_split(config, 2)  # 16 images per replica: one chunk each
    with pytest.raises(
        pretrain.PretrainError,
        match=r"per-replica batch.*Received: micro_batch_size=16, batch_size=32 over 4 replica",
    ):
        _check_batch_split(config, 4)
