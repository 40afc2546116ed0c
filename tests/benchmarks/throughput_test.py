"""benchmarks/throughput.py runs in its --tiny mode and reports sane numbers."""

import math

import pytest

from tests.benchmarks.runner import run_benchmark


# bfloat16 is left to tests/models (loss against float32): CI time is short.
@pytest.mark.process
@pytest.mark.parametrize("backend, precision", [("tensorflow", "float32"), ("jax", "float32")])
def test_tiny_throughput_run_writes_positive_numbers(cifar_npz, tmp_path, backend, precision):
    report, result = run_benchmark(
        "throughput",
        "--backend",
        backend,
        "--precision",
        precision,
        "--tiny",
        output=tmp_path / "throughput.json",
    )

    assert report["machine"]["backend"] == backend
    assert report["config"]["precision"] == precision
    assert report["config"]["batch_size"] == 16 and report["config"]["steps"] == 2
    assert report["config"]["width_multiplier"] == 0.125
    assert report["config"]["source_shape"] == [32, 32, 3]
    for mode in ("step_only", "end_to_end"):
        assert math.isfinite(report[mode]["images_per_s"]) and report[mode]["images_per_s"] > 0
        assert len(report[mode]["step_times_ms"]) == 2
        assert math.isfinite(report[mode]["last_loss"])
    ratio = report["end_to_end"]["images_per_s"] / report["step_only"]["images_per_s"]
    assert report["ratio"] > 0 and report["ratio"] == pytest.approx(ratio)
    assert math.isfinite(report["compile_s"]) and report["compile_s"] > 0
    assert report["peak_rss_mb"] > 0
    assert report["decode_s"] > 0
    assert report["machine"]["cpu_count"] >= 1
    assert report["command"].startswith("python -m benchmarks.throughput --backend ")
    assert "ratio end_to_end / step_only" in result.stdout
