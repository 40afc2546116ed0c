"""EXIF orientation, applied the same by both implementations, on a real CIFAR-10 photo."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from keras_simclr.data import image_folder_size
from keras_simclr.data import load_image_folder
from keras_simclr.data.image_check import inspect_images
from keras_simclr.data.image_decoding import decode_images
from keras_simclr.data.image_decoding import image_shape
from keras_simclr.data.image_folder import list_image_folder
from tests.data.jpeg_files import cifar_jpegs

ORIENTATION = 0x0112


def _upright(array, orientation):
    """The EXIF specification's meaning of each orientation, on a stored (H, W, 3) array."""
    mirrored = array[:, ::-1]
    return {
        1: array,
        2: mirrored,  # mirror horizontal
        3: np.rot90(array, 2),  # rotate 180
        4: array[::-1],  # mirror vertical
        5: np.rot90(mirrored, 1),  # mirror horizontal, rotate 270 clockwise
        6: np.rot90(array, -1),  # rotate 90 clockwise
        7: np.rot90(mirrored, -1),  # mirror horizontal, rotate 90 clockwise
        8: np.rot90(array, 1),  # rotate 270 clockwise
    }[orientation]


def _photo(height, width):
    jpegs, _ = cifar_jpegs(1)
    image = Image.open(io.BytesIO(jpegs[0])).convert("RGB")
    return image.resize((width, height), Image.BICUBIC)


def _write(image, path, orientation=None):
    options = {"quality": 95} if path.endswith(".jpg") else {}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        options["exif"] = exif
    image.save(path, **options)


def _stored_pixels(path, tensorflow):
    """The file's pixels as stored (orientation ignored), by the decoder of one implementation."""
    if tensorflow:
        import tensorflow as tf

        return tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        ).numpy()
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("extension", [".jpg", ".png"])
def test_every_orientation_in_both_implementations(tmp_path, extension):
    photo = _photo(32, 32)
    names = [f"o{k}{extension}" for k in range(1, 9)]
    for k, name in enumerate(names, start=1):
        _write(photo, str(tmp_path / name), orientation=k)
    _write(photo, str(tmp_path / f"plain{extension}"))
    plain = str(tmp_path / f"plain{extension}")
    bad, orientations = inspect_images([str(tmp_path / name) for name in names] + [plain])
    assert bad == [] and orientations == [1, 2, 3, 4, 5, 6, 7, 8, 1]

    order = [os.path.basename(path) for path in list_image_folder(str(tmp_path)).paths]
    for tensorflow in (False, True):
        data = load_image_folder(str(tmp_path), in_memory=not tensorflow)
        assert data.num_examples == 9 and data.num_classes == 0
        images, _ = data.arrays()
        # The un-tagged file decoded by the same decoder, turned by NumPy.
        stored = _stored_pixels(plain, tensorflow)
        for name, image in zip(order, images):
            k = 1 if name.startswith("plain") else int(name[1])
            np.testing.assert_array_equal(image, _upright(stored, k), err_msg=f"{name} {k}")
        if tensorflow:
            tf_images = images
    # Across the implementations (different decoders: a JPEG differs by a
    # few levels): each tf.data image is nearest to the Pillow oracle of its
    # own orientation among all eight.
    pillow_stored = _stored_pixels(plain, tensorflow=False).astype(int)
    for name, image in zip(order, tf_images.astype(int)):
        k = 1 if name.startswith("plain") else int(name[1])
        distances = [np.abs(image - _upright(pillow_stored, j)).mean() for j in range(1, 9)]
        assert int(np.argmin(distances)) + 1 == k, (name, distances)
        assert distances[k - 1] < (1e-9 if extension == ".png" else 2.0)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_size_is_the_upright_size(tmp_path, orientation):
    photo = _photo(24, 40)  # stored 24 high, 40 wide
    path = str(tmp_path / "photo.jpg")
    _write(photo, path, orientation=orientation)
    expected = (24, 40) if orientation == 3 else (40, 24)
    assert image_shape(path) == expected
    assert image_folder_size(str(tmp_path)) == expected
    stored = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(decode_images([path])[0], _upright(stored, orientation))
    for in_memory in (False, True):
        data = load_image_folder(str(tmp_path), in_memory=in_memory)
        assert data.image_size == expected
        image = data.arrays()[0][0]
        # No resize happened: the upright image at its own size.
        np.testing.assert_array_equal(
            image, _upright(_stored_pixels(path, not in_memory), orientation)
        )


def test_untagged_and_invalid_orientations_are_left_as_stored(tmp_path):
    photo = _photo(32, 32)
    _write(photo, str(tmp_path / "a.jpg"), orientation=0)
    _write(photo, str(tmp_path / "b.jpg"), orientation=9)
    _write(photo, str(tmp_path / "c.jpg"))
    _, orientations = inspect_images(sorted(str(p) for p in tmp_path.iterdir()))
    assert orientations == [1, 1, 1]
    stored = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    for image in load_image_folder(str(tmp_path), in_memory=True).arrays()[0]:
        np.testing.assert_array_equal(image, stored)


def test_orient_image_is_the_exif_meaning_on_a_non_square_array():
    from keras_simclr.data.tf_image_dataset import orient_image

    array = np.arange(3 * 5 * 2, dtype=np.uint8).reshape(3, 5, 2)
    for k in range(1, 9):
        np.testing.assert_array_equal(orient_image(array, k).numpy(), _upright(array, k))
    for invalid in (0, 9, -1):
        np.testing.assert_array_equal(orient_image(array, invalid).numpy(), array)
