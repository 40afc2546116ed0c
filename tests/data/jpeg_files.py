"""Real CIFAR-10 JPEG files written into any folder layout, for the unlabelled-data tests."""

import os

import numpy as np

from tests.conftest import CIFAR_NPZ


def cifar_jpegs(count, split="train"):
    """The encoded bytes of `count` real CIFAR-10 JPEGs of `split`, mixed classes, and labels."""
    data = np.load(CIFAR_NPZ)
    offsets, blob = data[f"{split}_offsets"], data[f"{split}_bytes"]
    chosen = np.random.default_rng(0).permutation(len(offsets) - 1)[:count]
    jpegs = [blob[offsets[i] : offsets[i + 1]].tobytes() for i in chosen]
    return jpegs, data[f"{split}_labels"][chosen].astype("int32")


def write_files(root, relative_paths, contents):
    """Writes each `contents[i]` (bytes) to `root/relative_paths[i]`; returns `str(root)`."""
    for relative, content in zip(relative_paths, contents):
        path = os.path.join(root, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(content)
    return str(root)


def flat_names(count):
    """`count` file names in one folder, mixing the extensions' cases."""
    return [f"img_{i:03d}.{('jpg', 'JPG', 'jpeg', 'JPEG')[i % 4]}" for i in range(count)]


def nested_names(count):
    """`count` paths at depths 1 to 3 (no class layout): `a.jpg`, `x/b.jpg`, `x/y/c.jpg`."""
    folders = ["", "2024/", "2024/beach/", "misc/deep/er/"]
    return [f"{folders[i % 4]}photo_{i:03d}.jpg" for i in range(count)]
