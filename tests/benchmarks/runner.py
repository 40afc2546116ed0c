"""`run_benchmark`: a benchmark's module run as `python -m benchmarks.<name>` from the repo root."""

import json
import os
import subprocess
import sys

from tests.conftest import CIFAR_NPZ
from tests.conftest import REPO_ROOT


def run_benchmark(name, *argv, output=None, timeout=600, returncode=0):
    """Runs `python -m benchmarks.<name> *argv` (with `--data` and `--output` when `output`).

    Returns:
        `(report, result)`: the JSON report written to `output` (None without one) and the
        `subprocess.CompletedProcess` (text stdout and stderr).
    """
    command = [sys.executable, "-m", f"benchmarks.{name}", *argv]
    if output is not None:
        command += ["--data", CIFAR_NPZ, "--output", str(output)]
    # The benchmark picks its backend from its flags, whatever the parent's is.
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == returncode, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text()) if output is not None else None
    return report, result
