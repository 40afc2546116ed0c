"""benchmarks/gradient_cache.py: the plain and cached steps measured in child processes."""

import math

import pytest

from benchmarks import gradient_cache
from tests.benchmarks.runner import run_benchmark


@pytest.mark.process
def test_tiny_run_measures_the_plain_and_the_cached_step(cifar_npz, tmp_path):
    # One batch size of the --tiny mode (16 and 32): each configuration is a child process
    # that compiles its own step, and CI time is short.
    report, result = run_benchmark(
        "gradient_cache", "--tiny", "--batch_sizes", "16", output=tmp_path / "gc.json"
    )

    assert report["machine"]["backend"] == "tensorflow"
    assert report["config"]["models"] == {"resnet18_cifar": gradient_cache.TINY_MODEL}
    plain, cached = report["runs"]
    assert (plain["micro_batch_size"], cached["micro_batch_size"]) == (None, 8)
    for run in (plain, cached):
        assert run["status"] == "ok", run.get("log_tail")
        assert (run["model"], run["image_size"], run["batch_size"]) == ("resnet18_cifar", 16, 16)
        for key in ("images_per_s", "s_per_step", "first_step_s", "last_loss"):
            assert math.isfinite(run[key]), key
        assert run["images_per_s"] > 0 and len(run["step_times_ms"]) == 1
        assert run["s_per_step"] == pytest.approx(16 * run["s_per_image"])
        assert 0 < run["pre_step_rss_mb"] <= run["peak_rss_mb"] < report["memory_limit_mb"]
        assert run["step_growth_mb"] == pytest.approx(run["peak_rss_mb"] - run["pre_step_rss_mb"])
        assert run["source_shape"] == [32, 32, 3]
    comparison = report["comparisons"]["resnet18_cifar"]["16"]
    assert comparison["time_per_image_ratio"] == pytest.approx(
        plain["images_per_s"] / cached["images_per_s"]
    )
    assert comparison["peak_rss_ratio"] == pytest.approx(
        cached["peak_rss_mb"] / plain["peak_rss_mb"]
    )
    assert comparison["step_growth_ratio"] == pytest.approx(
        cached["step_growth_mb"] / plain["step_growth_mb"]
    )
    assert report["acceptance"] == {}  # no batch 1024 with micro_batch_size=64 here
    assert report["command"].startswith("python -m benchmarks.gradient_cache --tiny")
    assert "cached / plain" in result.stdout


@pytest.mark.process
def test_a_child_over_the_memory_cap_is_killed_and_reported(cifar_npz, tmp_path):
    # 0.25 GB: Python with TensorFlow passes it while importing, long before a step.
    report, _ = run_benchmark(
        "gradient_cache",
        "--tiny",
        "--batch_sizes",
        "16",
        "--memory_limit_gb",
        "0.25",
        output=tmp_path / "gc.json",
    )

    assert report["memory_limit_mb"] == 256
    for run in report["runs"]:
        assert run["status"] == "over the cap"
        assert run["max_rss_seen_mb"] > 256
        assert "images_per_s" not in run and "peak_rss_mb" not in run
    assert report["comparisons"]["resnet18_cifar"]["16"] == {
        "plain_status": "over the cap",
        "cached_status": "over the cap",
    }


def record(status="ok", peak=None, pre=None, s_per_image=None):
    return {
        "status": status,
        "peak_rss_mb": peak,
        "pre_step_rss_mb": pre,
        "step_growth_mb": None if peak is None else peak - pre,
        "s_per_image": s_per_image,
    }


def test_ratios_and_the_acceptance_figure():
    plain = record(peak=4000.0, pre=800.0, s_per_image=0.02)
    cached = record(peak=1200.0, pre=800.0, s_per_image=0.025)
    comparison = gradient_cache.compare(plain, cached, memory_limit_mb=10_240)
    assert comparison["time_per_image_ratio"] == pytest.approx(1.25)
    assert comparison["peak_rss_ratio"] == pytest.approx(0.3)
    assert comparison["step_growth_ratio"] == pytest.approx(400 / 3200)

    figure = gradient_cache.acceptance({"resnet18_cifar": {"1024": comparison}}, 64)
    assert figure["resnet18_cifar"] == {
        "batch_size": 1024,
        "micro_batch_size": 64,
        "peak_rss_ratio": pytest.approx(0.3),
        "peak_rss_holds": False,
        "step_growth_ratio": pytest.approx(0.125),
        "step_growth_holds": True,
        "time_per_image_ratio": pytest.approx(1.25),
        "time_holds": True,
    }
    # Another micro-batch size is not the figure.
    assert gradient_cache.acceptance({"resnet18_cifar": {"1024": comparison}}, 32) == {}


def test_a_plain_step_over_the_cap_bounds_the_memory_ratios():
    plain = record(status="over the cap", pre=1000.0)
    cached = record(peak=2000.0, pre=1000.0, s_per_image=0.1)
    comparison = gradient_cache.compare(plain, cached, memory_limit_mb=8000)
    assert comparison["peak_rss_ratio_at_most"] == pytest.approx(0.25)
    assert comparison["step_growth_ratio_at_most"] == pytest.approx(1000 / 7000)
    assert "time_per_image_ratio" not in comparison and "peak_rss_ratio" not in comparison

    figure = gradient_cache.acceptance({"resnet50": {"1024": comparison}}, 64)["resnet50"]
    assert figure["peak_rss_holds"] and figure["step_growth_holds"]
    assert figure["time_per_image_ratio"] is None and figure["time_holds"] is None


@pytest.mark.parametrize(
    "argv, received",
    [
        (["--batch_sizes", "100", "--micro_batch_size", "64"], "batch_sizes=[100]"),
        (["--models", "vgg"], "['vgg']"),
        (["--steps", "0"], "steps=0"),
        (["--memory_limit_gb", "0"], "memory_limit_gb=0.0"),
        (["--skip", "resnet50"], "skip=['resnet50']"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_received(capsys, argv, received):
    with pytest.raises(SystemExit) as error:
        gradient_cache.parse_args(argv)
    assert error.value.code == 2
    assert received in capsys.readouterr().err
