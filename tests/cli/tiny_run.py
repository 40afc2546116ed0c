"""What the CLI's process tests share: tiny flags and a child process environment."""

import os

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
