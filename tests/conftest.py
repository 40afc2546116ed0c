"""Shared fixtures: real CIFAR-10 JPEGs from ../shared/data, never a download."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import keras_simclr

# Before any test module imports TensorFlow: the suite runs on TensorFlow's
# oneDNN CPU kernels, as the CLI does, also on CPUs where TensorFlow leaves
# them off (about 1.7x faster there). Child processes inherit the setting.
keras_simclr.enable_onednn()

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("KERAS_SIMCLR_DATA", os.path.join(REPO_ROOT, "..", "shared", "data"))
CIFAR_NPZ = os.path.join(SHARED_DATA, "cifar10_jpeg.npz")
# CIFAR-10's class names by label, the order of the npz's labels and folders.
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _require_npz():
    if not os.path.exists(CIFAR_NPZ):
        raise FileNotFoundError(
            f"The tests read real CIFAR-10 JPEGs from {CIFAR_NPZ}; it is missing. "
            "Put ../shared beside the checkout or set KERAS_SIMCLR_DATA."
        )
    return CIFAR_NPZ


@pytest.fixture(scope="session")
def cifar_npz():
    """Path of the shared `cifar10_jpeg.npz`."""
    return _require_npz()


def decode_cifar(split="train", count=64, start=0):
    """Decodes `count` real CIFAR-10 JPEGs to a uint8 (count, 32, 32, 3) array.

    The file is sorted by class, so images are taken in a fixed shuffled
    order (seed 0) of the split: every class appears. Returns
    `(images, labels)`.
    """
    import io

    from PIL import Image

    data = np.load(_require_npz())
    offsets = data[f"{split}_offsets"]
    blob = data[f"{split}_bytes"]
    order = np.random.default_rng(0).permutation(len(offsets) - 1)
    chosen = order[start : start + count]
    labels = data[f"{split}_labels"][chosen].astype("int32")
    images = np.stack(
        [
            np.asarray(
                Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())).convert("RGB")
            )
            for i in chosen
        ]
    )
    return images, labels


@pytest.fixture(scope="session")
def cifar_images():
    """256 real CIFAR-10 training images, uint8 (256, 32, 32, 3), and labels."""
    return decode_cifar("train", 256)


def extract_folder(tmp_path_factory, name, per_class):
    """The real CIFAR-10 JPEGs extracted as ROOT/{train,test}/<class>/*.jpg, `per_class` each."""
    out = tmp_path_factory.mktemp(name)
    subprocess.run(
        [
            sys.executable,
            os.path.join(SHARED_DATA, "extract.py"),
            _require_npz(),
            str(out),
            "--per_class",
            str(per_class),
        ],
        check=True,
        capture_output=True,
    )
    return str(out)


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory):
    """An extracted image folder, 20 images per class: ROOT/{train,test}/<class>/*.jpg."""
    return extract_folder(tmp_path_factory, "cifar10_folder", 20)


def run_in_subprocess(code, backend="jax", timeout=600, extra_env=None):
    """Runs `code` in a fresh Python with `KERAS_BACKEND=backend`; returns stdout.

    Keras fixes its backend at import, so tests of another backend (JAX in a
    TensorFlow test session) run in a child process.
    """
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if extra_env:
        env.update(extra_env)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"subprocess ({backend}) failed with code {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout
