"""`load_image_folder(root)` without a split: any folder of images, both implementations."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from keras_simclr.data import BadImagesError
from keras_simclr.data import BadImagesWarning
from keras_simclr.data import find_images
from keras_simclr.data import image_folder_size
from keras_simclr.data import load_image_folder
from keras_simclr.data.image_folder import list_image_folder
from tests.data.jpeg_files import cifar_jpegs
from tests.data.jpeg_files import flat_names
from tests.data.jpeg_files import nested_names
from tests.data.jpeg_files import write_files


def _pillow(jpeg):
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


@pytest.fixture(scope="module", params=["flat", "nested"])
def unlabelled(request, tmp_path_factory):
    """40 real CIFAR-10 JPEGs in a flat or a nested folder: `(root, {relative: jpeg})`."""
    jpegs, _ = cifar_jpegs(40)
    names = flat_names(40) if request.param == "flat" else nested_names(40)
    root = write_files(tmp_path_factory.mktemp(request.param), names, jpegs)
    write_files(root, ["notes.txt", ".thumbs/x.jpg"], [b"notes", jpegs[0]])
    return root, dict(zip(names, jpegs))


@pytest.mark.parametrize("in_memory", [True, False])
def test_every_image_once_unlabelled(unlabelled, in_memory):
    root, files = unlabelled
    data = load_image_folder(root, in_memory=in_memory)
    assert data.num_examples == 40 and data.num_classes == 0 and data.class_names == []
    assert data.image_size == (32, 32)
    images, labels = data.arrays()
    np.testing.assert_array_equal(labels, np.zeros(40, np.int32))
    # Dataset order: list_image_folder's, a fixed shuffle of the sorted files.
    listing = list_image_folder(root)
    relative = [os.path.relpath(path, root).replace(os.sep, "/") for path in listing.paths]
    assert sorted(relative) == sorted(files) and relative != sorted(relative)
    assert relative == [
        os.path.relpath(p, root).replace(os.sep, "/") for p in list_image_folder(root).paths
    ]
    oracle = np.stack([_pillow(files[name]) for name in relative]).astype(int)
    difference = np.abs(images.astype(int) - oracle)
    if in_memory:  # Pillow, the decoder of the oracle
        assert difference.max() == 0
    else:  # TensorFlow's fast IDCT (see image_folder_test)
        assert difference.max() <= 6 and difference.mean() < 1.0


def test_take_keeps_the_first_in_dataset_order(unlabelled):
    root, _ = unlabelled
    data = load_image_folder(root, in_memory=True)
    first = data.take(10)
    assert first.num_examples == 10 and first.num_classes == 0
    np.testing.assert_array_equal(first.arrays()[0], data.arrays()[0][:10])


def test_class_layout_is_labelled(tmp_path):
    jpegs, _ = cifar_jpegs(12)
    names = [f"{('dog', 'cat', 'ship')[i % 3]}/{i:02d}.png" for i in range(12)]
    pngs = []
    for jpeg in jpegs:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(jpeg)).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    write_files(tmp_path, names, pngs)
    listing = list_image_folder(str(tmp_path))
    for in_memory in (True, False):
        data = load_image_folder(str(tmp_path), in_memory=in_memory)
        assert data.num_classes == 3 and data.class_names == ["cat", "dog", "ship"]
        images, labels = data.arrays()
        for path, image, label in zip(listing.paths, images, labels):
            relative = os.path.relpath(path, tmp_path)
            assert data.class_names[label] == os.path.dirname(relative)
            # Lossless PNG: the same pixels from both decoders.
            np.testing.assert_array_equal(image, _pillow(pngs[names.index(relative)]))


def test_split_layout_read_whole_is_unlabelled(cifar_folder):
    data = load_image_folder(cifar_folder, in_memory=True)
    assert data.num_examples == 400 and data.num_classes == 0
    assert image_folder_size(cifar_folder) == (32, 32)


def test_bad_images_are_named_or_skipped(tmp_path):
    jpegs, _ = cifar_jpegs(6)
    names = nested_names(6)
    write_files(tmp_path, names, jpegs)
    truncated = write_files(tmp_path, ["deep/cut.jpg"], [jpegs[0][: len(jpegs[0]) // 2]])
    bad_path = os.path.join(truncated, "deep", "cut.jpg")
    for in_memory in (True, False):
        with pytest.raises(BadImagesError, match=r"1 of 7 image files of '.*'.*cut\.jpg") as error:
            load_image_folder(str(tmp_path), in_memory=in_memory)
        assert error.value.folder == str(tmp_path)
        assert [path for path, _ in error.value.bad_images] == [bad_path]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_image_folder(str(tmp_path), in_memory=in_memory, skip_bad_images=True)
        assert data.num_examples == 6
        assert [w.category for w in caught if w.category is BadImagesWarning] == [BadImagesWarning]


def test_missing_or_image_less_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Received: root='.*missing'"):
        load_image_folder(str(tmp_path / "missing"))
    write_files(tmp_path, ["a/readme.md", "b.csv"], [b"#", b"1,2"])
    for in_memory in (True, False):
        with pytest.raises(ValueError, match=r"No image files .*2 other files"):
            load_image_folder(str(tmp_path), in_memory=in_memory)
    with pytest.raises(ValueError, match="No image files"):
        image_folder_size(str(tmp_path))
    # find_images is what both read.
    with pytest.raises(ValueError, match="No image files"):
        find_images(str(tmp_path))
