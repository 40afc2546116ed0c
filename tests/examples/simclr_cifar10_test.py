import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.process
def test_example_small_steps_mode_runs_end_to_end(cifar_folder, tmp_path):
    output = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "examples", "simclr_cifar10.py"),
            "--image_folder",
            cifar_folder,
            "--small_steps",
            "--output_dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    accuracy = float(result.stdout.split("final kNN accuracy:")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0
    assert (output / "training.png").stat().st_size > 10_000
    assert (output / "encoder.keras").stat().st_size > 0
