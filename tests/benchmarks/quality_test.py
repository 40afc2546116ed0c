"""benchmarks/quality.py: argument checks, data order, and --tiny runs with sane numbers."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import quality
from benchmarks import throughput
from tests.conftest import CIFAR_NPZ
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "Give --epochs, --seconds or both"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--epochs", "1", "--batch_size", "512", "--train_examples", "256"], "batch_size <= train_examples"),
        (["--epochs", "1", "--train_examples", "60000"], "--train_examples must be in"),
        (["--epochs", "1", "--eval_examples", "0"], "--eval_examples must be in"),
        (["--epochs", "1", "--knn_every", "-1"], "--knn_every must be >= 0"),
        (["--epochs", "1", "--knn_temperature", "0"], "--knn_temperature must be > 0"),
        (["--epochs", "1", "--width_multiplier", "-1"], "--width_multiplier must be > 0"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_received(capsys, argv, message):
    with pytest.raises(SystemExit) as error:
        quality.parse_args(argv)
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Received" in err


def test_tiny_and_schedule_defaults():
    args = quality.parse_args(["--tiny"])
    assert (args.width_multiplier, args.batch_size, args.epochs, args.seconds) == (0.125, 16, 1, None)
    assert (args.train_examples, args.eval_examples, args.schedule_epochs) == (128, 64, 1)
    # --seconds alone plans the schedule for 100 epochs; --epochs plans it for those.
    assert quality.parse_args(["--seconds", "60"]).schedule_epochs == 100
    assert quality.parse_args(["--epochs", "7"]).schedule_epochs == 7
    assert quality.parse_args(["--tiny", "--epochs", "2", "--seconds", "5"]).epochs == 2
    # The CLI's plan: 10% of the epochs (at most 10) of warmup.
    args = quality.parse_args(["--epochs", "200"])
    assert quality.schedule_steps(args, 195) == (10 * 195, 200 * 195)
    args = quality.parse_args(["--epochs", "1"])
    assert quality.schedule_steps(args, 4) == (0, 4)


def test_read_split_takes_throughputs_training_images_with_their_labels(cifar_npz):
    jpegs, labels = quality.read_split(cifar_npz, "train", 50)
    assert jpegs == throughput.read_jpegs(cifar_npz, 50)
    assert labels.dtype == np.int32 and labels.shape == (50,) and len(set(labels.tolist())) > 5
    test_jpegs, test_labels = quality.read_split(cifar_npz, "test", 20)
    assert len(test_jpegs) == 20 and test_labels.max() < 10
    with pytest.raises(FileNotFoundError, match="KERAS_SIMCLR_DATA"):
        quality.read_split(os.path.join(REPO_ROOT, "missing.npz"), "train", 1)


@pytest.mark.parametrize(
    "backend, extra",
    # JAX: stop on time at the first step boundary (the first step alone takes longer).
    [("tensorflow", []), ("jax", ["--epochs", "2", "--seconds", "0.001"])],
)
def test_tiny_quality_run_writes_knn_and_timings(cifar_npz, tmp_path, backend, extra):
    output = tmp_path / "quality.json"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "quality.py"), "--backend", backend,
         "--tiny", "--data", CIFAR_NPZ, "--output", str(output)] + extra,
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())

    assert report["implementation"] == "keras_simclr"
    assert report["machine"]["backend"] == backend
    config = report["config"]
    assert config["width_multiplier"] == 0.125 and config["batch_size"] == 16
    assert (config["preset"], config["temperature"]) == ("cifar", 0.5)
    assert config["peak_learning_rate"] == pytest.approx(0.3 * 16 / 256)
    assert report["knn"] == {"k": 128, "temperature": 0.1, "bank_examples": 128, "query_examples": 64,
                             "features": "encoder (backbone)"}
    assert report["steps_per_epoch"] == 8
    epochs = report["epochs"]
    if extra:  # stopped after the first step of the first epoch
        assert len(epochs) == 1 and epochs[0]["steps"] == 1 and not epochs[0]["complete"]
        assert report["epochs_completed"] == 0 and "(stopped)" in result.stdout
    else:
        assert len(epochs) == 1 and epochs[0]["steps"] == 8 and epochs[0]["complete"]
        assert report["epochs_completed"] == 1
    last = epochs[-1]
    assert 0.0 <= last["knn_accuracy"] <= 1.0 and last["knn_s"] > 0
    assert report["final_knn_accuracy"] == last["knn_accuracy"]
    assert math.isfinite(last["loss"]) and report["final_loss"] == last["loss"]
    assert report["train_s"] == pytest.approx(sum(e["train_s"] for e in epochs))
    assert report["images_per_s"] == pytest.approx(report["steps"] * 16 / report["train_s"])
    assert 0 < report["compile_s"] <= report["train_s"] < report["fit_s"] <= report["wall_s"]
    assert report["peak_rss_mb"] > 0 and report["decode_s"] > 0
    assert report["command"].startswith("python ")
    assert "final kNN accuracy (k=128, T=0.1)" in result.stdout
