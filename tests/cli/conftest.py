"""The CLI tests' tiny real image folder (3 CIFAR-10 JPEGs per class and split)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import SHARED_DATA
from tests.conftest import _require_npz


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_cifar")
    subprocess.run(
        [
            sys.executable,
            os.path.join(SHARED_DATA, "extract.py"),
            _require_npz(),
            str(out),
            "--per_class",
            "3",
        ],
        check=True,
        capture_output=True,
    )
    return str(out)
