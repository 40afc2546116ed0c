"""benchmarks/lightly_reference.py: arguments and schedule everywhere; model, kNN and --tiny runs
where torch, torchvision and lightly are installed (CI has none of them: those tests skip)."""

import importlib.util
import math

import pytest

from benchmarks import lightly_model
from benchmarks import lightly_reference
from tests.benchmarks.runner import run_benchmark
from tests.conftest import run_in_subprocess

# ------------------------------------------------------------ without torch


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "resnet50"], "Unknown --model"),
        (["--mode", "throughput", "--steps", "0"], "--warmup_steps and --steps must be >= 1"),
        (
            ["--mode", "throughput", "--batch_size", "64", "--num_images", "32"],
            "batch_size <= num_images",
        ),
        (["--mode", "throughput", "--num_workers", "-1"], "--num_workers must be >= 0"),
        (["--mode", "quality"], "Give --epochs, --seconds or both"),
        (["--mode", "quality", "--seconds", "-1"], "--seconds must be > 0"),
        (
            ["--mode", "quality", "--epochs", "1", "--eval_examples", "10001"],
            "--eval_examples must be in",
        ),
    ],
)
def test_bad_arguments_are_refused_with_what_was_received(capsys, argv, message):
    with pytest.raises(SystemExit) as error:
        lightly_reference.parse_args(argv)
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Received" in err


def test_tiny_settings_match_the_keras_benchmarks():
    from benchmarks import quality
    from benchmarks import throughput

    for mode, ours in (("throughput", throughput), ("quality", quality)):
        theirs = vars(lightly_reference.parse_args(["--mode", mode, "--tiny"]))
        mine = vars(ours.parse_args(["--tiny"]))
        shared = set(mine) & set(theirs) - {"backend"}
        assert shared and {k: theirs[k] for k in shared} == {k: mine[k] for k in shared}


def test_learning_rate_schedule_is_the_keras_cosine_decay_with_warmup():
    keras = pytest.importorskip("keras")
    peak = 0.3 * 512 / 256
    for warmup, total in ((10, 100), (0, 7), (3, 4)):
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else peak,
            decay_steps=max(total - warmup, 1),
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
        for step in list(range(total + 3)):
            expected = float(keras.ops.convert_to_numpy(schedule(step)))
            actual = peak * lightly_model.learning_rate_factor(step, warmup, total)
            assert actual == pytest.approx(expected, rel=1e-5, abs=1e-7), (warmup, total, step)


# ------------------------------------------------------------ with torch
#
# Importing torchvision after TensorFlow crashes the process (torch 2.14,
# TensorFlow 2.21), and this test session may have imported TensorFlow
# already: everything that needs torch runs in a child process that imports
# torch, torchvision and lightly first.

PARTS_CHECK = """
import numpy as np
import torch, torchvision, lightly  # before TensorFlow (see above)
from lightly.utils.benchmarking import knn_predict

from benchmarks import lightly_knn
from benchmarks import lightly_model
from keras_simclr.evaluation import weighted_knn_predict
from keras_simclr.models import ProjectionHead
from keras_simclr.models import create_encoder

# The reference kNN = keras_simclr's kNN = lightly's knn_predict, on random features.
rng = np.random.default_rng(0)
bank = rng.normal(size=(300, 16)).astype("float32")
labels = rng.integers(0, 10, size=300)
queries = rng.normal(size=(70, 16)).astype("float32")
normalize = torch.nn.functional.normalize
for k, temperature in ((200, 0.1), (1, 0.1), (50, 0.5)):
    ours = weighted_knn_predict(
        bank, labels, queries, 10, k=k, temperature=temperature, batch_size=32)
    reference = lightly_knn.weighted_knn_predict(
        bank, labels, queries, 10, k=k, temperature=temperature, batch_size=32)
    np.testing.assert_array_equal(reference.numpy(), ours)
    theirs = knn_predict(normalize(torch.from_numpy(queries), dim=1),
                         normalize(torch.from_numpy(bank), dim=1).T,
                         torch.from_numpy(labels), 10, knn_k=k, knn_t=temperature)[:, 0]
    np.testing.assert_array_equal(theirs.numpy(), ours)
try:
    lightly_knn.weighted_knn_predict(bank, labels, queries, 10, k=301)
    raise AssertionError("k > N was accepted")
except ValueError as error:
    assert "k must be between 1" in str(error)

# The backbone: the CIFAR stem, and as many parameters as keras_simclr's ResNet.
def trainable(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)

for width in (1, 0.125):
    backbone = lightly_model.build_backbone("resnet18_cifar", width)
    assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.stride == (1, 1)
    assert isinstance(backbone.maxpool, torch.nn.Identity)
    assert isinstance(backbone.fc, torch.nn.Identity)
    assert backbone.feature_dim == int(512 * width)
    backbone.eval()
    with torch.no_grad():
        assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, int(512 * width))
    # The last BatchNorm of each residual branch starts at zero in both.
    assert float(backbone.layer1[0].bn2.weight.abs().sum()) == 0.0
    encoder = create_encoder("resnet18_cifar", 32, width_multiplier=width)
    assert sum(p.numel() for p in backbone.parameters()) == trainable(encoder), width

# The head: Linear(no bias)-BN-ReLU-Linear(bias), as keras_simclr's ProjectionHead.
head = lightly_model.projection_head(64)
assert [type(m).__name__ for m in head.layers] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
assert head.layers[0].bias is None and head.layers[3].bias is not None
assert head(torch.zeros(4, 64)).shape == (4, 128)
ours = ProjectionHead(num_layers=2, output_dim=128)
ours.build((None, 64))
assert sum(p.numel() for p in head.parameters()) == trainable(ours)
print("parts match")
"""


def _require_torch():
    # find_spec, not import: see above.
    for name in ("torch", "torchvision", "lightly"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(
                f"could not import {name!r} (lightly_reference needs torch, torchvision, lightly)"
            )


@pytest.mark.process
def test_reference_knn_model_and_head_match_keras_simclr():
    _require_torch()
    assert "parts match" in run_in_subprocess(PARTS_CHECK, backend="tensorflow")


def _run(mode, tmp_path):
    report, result = run_benchmark(
        "lightly_reference",
        "--mode",
        mode,
        "--tiny",
        "--device",
        "cpu",
        output=tmp_path / f"lightly_{mode}.json",
    )
    return report, result.stdout


@pytest.mark.process
def test_tiny_throughput_run_reports_throughputs_fields(cifar_npz, tmp_path):
    _require_torch()
    report, stdout = _run("throughput", tmp_path)
    assert report["implementation"] == "lightly" and report["machine"]["backend"] == "torch"
    config = report["config"]
    assert (
        config["batch_size"] == 16 and config["steps"] == 2 and config["width_multiplier"] == 0.125
    )
    assert config["source_shape"] == [32, 32, 3] and config["temperature"] == 0.5
    for mode in ("step_only", "end_to_end"):
        assert math.isfinite(report[mode]["images_per_s"]) and report[mode]["images_per_s"] > 0
        assert len(report[mode]["step_times_ms"]) == 2
        assert math.isfinite(report[mode]["last_loss"])
    ratio = report["end_to_end"]["images_per_s"] / report["step_only"]["images_per_s"]
    assert report["ratio"] == pytest.approx(ratio)
    assert report["compile_s"] > 0 and report["peak_rss_mb"] > 0 and report["decode_s"] > 0
    assert "ratio end_to_end / step_only" in stdout


@pytest.mark.process
def test_tiny_quality_run_reports_qualitys_fields(cifar_npz, tmp_path):
    _require_torch()
    report, stdout = _run("quality", tmp_path)
    assert report["implementation"] == "lightly"
    assert report["knn"] == {
        "k": 128,
        "temperature": 0.1,
        "bank_examples": 128,
        "query_examples": 64,
        "features": "encoder (backbone)",
    }
    assert report["config"]["peak_learning_rate"] == pytest.approx(0.3 * 16 / 256)
    assert (report["config"]["warmup_steps"], report["config"]["total_steps"]) == (
        1,
        8,
    )  # round(0.1 * 8)
    (epoch,) = report["epochs"]
    assert epoch["steps"] == 8 and epoch["complete"] and report["epochs_completed"] == 1
    assert 0.0 <= epoch["knn_accuracy"] <= 1.0 and epoch["knn_s"] > 0
    assert report["final_knn_accuracy"] == epoch["knn_accuracy"]
    assert math.isfinite(epoch["loss"])
    assert report["images_per_s"] == pytest.approx(8 * 16 / report["train_s"])
    assert 0 < report["compile_s"] <= report["train_s"] < report["fit_s"] <= report["wall_s"]
    assert "final kNN accuracy (k=128, T=0.1)" in stdout
