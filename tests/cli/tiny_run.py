"""What the CLI's process tests share: tiny flags and a child process environment."""

import os
import sys

from tests.conftest import REPO_ROOT

# Every tiny flag but the ResNet's width: what a keras-hub or keras.applications
# backbone (`--model`), which refuses --width_multiplier, trains with.
TINY_ANY_MODEL = [
    "--batch_size",
    "8",
    "--projection_dim",
    "16",
    "--knn_k",
    "10",
    "--knn_every",
    "0",
    "--verbose",
    "0",
]
# 30 train images at batch 8: 3 steps per epoch.
TINY = [*TINY_ANY_MODEL, "--width_multiplier", "0.125"]


def tiny_env(faults=None):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KERAS_SIMCLR_FAULTS", None)
    if faults:
        env["KERAS_SIMCLR_FAULTS"] = faults
    return env


def pretrain_command(folder, output, *flags, tiny=TINY):
    """`keras-simclr pretrain` on `folder` into `output` with the tiny flags (a child process).

    Args:
        folder: the `--image_folder`.
        output: the `--output_dir`.
        *flags: more flags, after `tiny` (a repeated flag's last value wins).
        tiny: the tiny flags; `TINY_ANY_MODEL` for a `--model` backbone.
    """
    return [
        sys.executable,
        "-m",
        "keras_simclr.cli.main",
        "pretrain",
        "--image_folder",
        folder,
        "--output_dir",
        str(output),
        *tiny,
        *flags,
    ]
