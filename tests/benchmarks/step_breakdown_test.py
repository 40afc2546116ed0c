"""benchmarks/step_breakdown.py runs in its --tiny mode and reports every part."""

import math

import pytest

from benchmarks import step_breakdown
from tests.benchmarks.runner import run_benchmark


@pytest.mark.process
def test_tiny_step_breakdown_times_every_part(cifar_npz, tmp_path):
    report, result = run_benchmark(
        "step_breakdown", "--tiny", output=tmp_path / "step_breakdown.json"
    )

    parts = (
        "augment",
        "encoder_forward",
        "encoder_forward_backward",
        "loss_forward",
        "gradients",
        "optimizer_apply",
        "train_step",
    )
    assert set(report["ms"]) == set(parts)
    for part in parts:
        assert math.isfinite(report["ms"][part]) and report["ms"][part] > 0, part
        assert (
            report["share_of_train_step"][part] == report["ms"][part] / report["ms"]["train_step"]
        )
    assert report["views_per_step"] == 16 and report["config"]["width_multiplier"] == 0.125
    assert report["matmul_gflops"] > 0
    # A narrowed network has no known FLOP count: no GFLOP/s claimed for it.
    assert "encoder_gflops" not in report
    for part in parts:
        assert part in result.stdout


def test_bad_arguments_are_refused_with_what_was_received(capsys):
    with pytest.raises(SystemExit) as error:
        step_breakdown.parse_args(["--steps", "0"])
    assert error.value.code == 2
    assert "steps=0" in capsys.readouterr().err
