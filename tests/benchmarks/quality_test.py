"""benchmarks/quality.py: argument checks, data order, and --tiny runs with sane numbers."""

import math
import os

import numpy as np
import pytest

from benchmarks import common
from benchmarks import protocols
from benchmarks import quality
from tests.benchmarks.runner import run_benchmark
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "Give --epochs, --seconds or both"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--seconds", "0"], "--seconds must be > 0"),
        (
            ["--epochs", "1", "--batch_size", "512", "--train_examples", "256"],
            "batch_size <= train_examples",
        ),
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
    assert (args.width_multiplier, args.batch_size, args.epochs, args.seconds) == (
        0.125,
        16,
        1,
        None,
    )
    assert (args.train_examples, args.eval_examples, args.schedule_epochs) == (128, 64, 1)
    # --seconds alone plans the schedule for 100 epochs; --epochs plans it for those.
    assert quality.parse_args(["--seconds", "60"]).schedule_epochs == 100
    assert quality.parse_args(["--epochs", "7"]).schedule_epochs == 7
    assert quality.parse_args(["--tiny", "--epochs", "2", "--seconds", "5"]).epochs == 2
    # The CLI's plan: 10% of the epochs (at most 10) of warmup.
    args = quality.parse_args(["--epochs", "200"])
    assert protocols.schedule_steps(args, 195) == (10 * 195, 200 * 195)
    args = quality.parse_args(["--epochs", "1"])
    assert protocols.schedule_steps(args, 4) == (0, 4)


def test_read_split_takes_a_fixed_shuffled_subset_with_its_labels(cifar_npz):
    jpegs, labels = common.read_split(cifar_npz, "train", 50)
    # The seed-0 permutation of the split (sorted by class in the file): every class early.
    data = np.load(cifar_npz)
    first = np.random.default_rng(0).permutation(len(data["train_offsets"]) - 1)[0]
    start, end = data["train_offsets"][first], data["train_offsets"][first + 1]
    assert jpegs[0] == data["train_bytes"][start:end].tobytes()
    assert labels[0] == data["train_labels"][first]
    assert labels.dtype == np.int32 and labels.shape == (50,) and len(set(labels.tolist())) > 5
    assert common.read_split(cifar_npz, "train", 10)[0] == jpegs[:10]
    test_jpegs, test_labels = common.read_split(cifar_npz, "test", 20)
    assert len(test_jpegs) == 20 and test_labels.max() < 10
    with pytest.raises(FileNotFoundError, match="KERAS_SIMCLR_DATA"):
        common.read_split(os.path.join(REPO_ROOT, "missing.npz"), "train", 1)


@pytest.mark.process
@pytest.mark.parametrize(
    "backend, extra",
    # JAX: stop on time at the first step boundary (the first step alone takes longer).
    [("tensorflow", []), ("jax", ["--epochs", "2", "--seconds", "0.001"])],
)
def test_tiny_quality_run_writes_knn_and_timings(cifar_npz, tmp_path, backend, extra):
    report, result = run_benchmark(
        "quality", "--backend", backend, "--tiny", *extra, output=tmp_path / "quality.json"
    )

    assert report["implementation"] == "keras_simclr"
    assert report["machine"]["backend"] == backend
    config = report["config"]
    assert config["width_multiplier"] == 0.125 and config["batch_size"] == 16
    assert (config["preset"], config["temperature"]) == ("cifar", 0.5)
    assert config["peak_learning_rate"] == pytest.approx(0.3 * 16 / 256)
    # The recipe plans the schedule as the lightly reference does (protocols.schedule_steps).
    planned = protocols.schedule_steps(quality.parse_args(["--tiny", *extra]), 8)
    assert (config["warmup_steps"], config["total_steps"]) == planned
    assert planned == ((2, 16) if extra else (1, 8))  # round(0.1 * epochs * 8) of warmup
    assert report["knn"] == {
        "k": 128,
        "temperature": 0.1,
        "bank_examples": 128,
        "query_examples": 64,
        "features": "encoder (backbone)",
    }
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
    assert report["command"].startswith("python -m benchmarks.quality ")
    assert "final kNN accuracy (k=128, T=0.1)" in result.stdout
