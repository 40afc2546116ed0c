"""The CLI tests' tiny real image folder (3 CIFAR-10 JPEGs per class and split)."""

import pytest

from tests.conftest import extract_folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return extract_folder(tmp_path_factory, "tiny_cifar", 3)
