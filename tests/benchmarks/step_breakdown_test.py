"""benchmarks/step_breakdown.py runs in its --tiny mode and reports every part."""

import json
import math
import os
import subprocess
import sys

from tests.conftest import CIFAR_NPZ
from tests.conftest import REPO_ROOT


def test_tiny_step_breakdown_times_every_part(cifar_npz, tmp_path):
    output = tmp_path / "step_breakdown.json"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "step_breakdown.py"),
         "--tiny", "--data", CIFAR_NPZ, "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())

    parts = ("augment", "encoder_forward", "encoder_forward_backward", "loss_forward",
             "gradients", "optimizer_apply", "train_step")
    assert set(report["ms"]) == set(parts)
    for part in parts:
        assert math.isfinite(report["ms"][part]) and report["ms"][part] > 0, part
        assert report["share_of_train_step"][part] == report["ms"][part] / report["ms"]["train_step"]
    assert report["views_per_step"] == 16 and report["config"]["width_multiplier"] == 0.125
    assert report["matmul_gflops"] > 0
    # A narrowed network has no known FLOP count: no GFLOP/s claimed for it.
    assert "encoder_gflops" not in report
    for part in parts:
        assert part in result.stdout


def test_bad_arguments_are_refused_with_what_was_received():
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "step_breakdown.py"), "--steps", "0"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=120,
    )
    assert result.returncode == 2
    assert "steps=0" in result.stderr
