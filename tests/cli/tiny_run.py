"""What the CLI's process tests share: tiny flags and a child process environment."""

import os
import sys

from tests.conftest import REPO_ROOT

# 30 train images at batch 8: 3 steps per epoch.
TINY = [
    "--batch_size",
    "8",
    "--width_multiplier",
    "0.125",
    "--projection_dim",
    "16",
    "--knn_k",
    "10",
    "--knn_every",
    "0",
    "--verbose",
    "0",
]


def tiny_env(faults=None):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KERAS_SIMCLR_FAULTS", None)
    if faults:
        env["KERAS_SIMCLR_FAULTS"] = faults
    return env


def pretrain_command(folder, output, *flags):
    """`keras-simclr pretrain` on `folder` into `output` with the tiny flags (a child process)."""
    return [
        sys.executable,
        "-m",
        "keras_simclr.cli.main",
        "pretrain",
        "--image_folder",
        folder,
        "--output_dir",
        str(output),
        *TINY,
        *flags,
    ]
