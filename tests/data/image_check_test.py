"""Bad image files are found and named before training, in both input pipelines."""

import io
import os
import pickle
import re
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image
from PIL import ImageFile

from keras_simclr.data import BadImagesError
from keras_simclr.data import BadImagesWarning
from keras_simclr.data import image_folder_size
from keras_simclr.data import load_image_folder
from keras_simclr.data.image_check import MAX_LISTED_BAD_IMAGES
from keras_simclr.data.image_check import check_image
from keras_simclr.data.image_check import find_bad_images
from keras_simclr.data.image_folder import list_image_folder

# Not the first image of any order: the second class folder's eighth file
# (train) and the ninth class folder's twelfth (test).
RANDOM_BYTES = os.path.join("train", "automobile", "0007.jpg")
TRUNCATED = os.path.join("test", "ship", "0011.jpg")


def _tf_load(root, split, **kwargs):
    info = load_image_folder(root, split, **kwargs)
    images, labels = info.arrays()
    assert info.num_examples == len(images)
    np.testing.assert_array_equal(info.labels, labels)
    return info.num_examples, images, labels


def _numpy_load(root, split, **kwargs):
    data = load_image_folder(root, split, in_memory=True, num_threads=2, **kwargs)
    return data.num_examples, data.images, data.labels


LOADERS = {"tf": _tf_load, "numpy": _numpy_load}


@pytest.fixture(scope="module")
def bad_folder(cifar_folder, tmp_path_factory):
    """The CIFAR folder (20 images per class) with one file of random bytes
    named .jpg in train and one JPEG cut in half in test."""
    root = tmp_path_factory.mktemp("bad_images") / "data"
    shutil.copytree(cifar_folder, root)
    (root / RANDOM_BYTES).write_bytes(np.random.default_rng(0).bytes(900))
    data = (root / TRUNCATED).read_bytes()
    (root / TRUNCATED).write_bytes(data[: len(data) // 2])
    return str(root)


def _index_in(root, split, relative):
    """Index of `root/relative` in the dataset order of `root/split`."""
    paths, *_ = list_image_folder(root, split, check=False)
    return [os.path.relpath(p, root) for p in paths].index(relative)


@pytest.mark.parametrize("pipeline", ["tf", "numpy"])
def test_bad_files_are_named_before_loading(bad_folder, pipeline):
    load = LOADERS[pipeline]
    with pytest.raises(BadImagesError) as caught:
        load(bad_folder, "train")
    message = str(caught.value)
    bad = os.path.join(bad_folder, RANDOM_BYTES)
    assert isinstance(caught.value, ValueError)
    assert f"{bad!r} (not a JPEG, PNG, GIF, BMP or WebP image" in message
    assert "1 of 200 image files of" in message
    assert "skip_bad_images=True" in message and "--skip_bad_images" in message
    assert "ship" not in message  # only the split loaded is checked
    assert caught.value.bad_images == [(bad, caught.value.bad_images[0][1])]
    assert caught.value.num_images == 200
    assert "\n" not in message  # one line, as the CLI prints its errors

    with pytest.raises(BadImagesError) as caught:
        load(bad_folder, "test")
    truncated = os.path.join(bad_folder, TRUNCATED)
    assert re.search(re.escape(f"{truncated!r} (truncated"), str(caught.value))
    assert "automobile" not in str(caught.value)


@pytest.mark.parametrize("pipeline", ["tf", "numpy"])
@pytest.mark.parametrize("split, relative", [("train", RANDOM_BYTES), ("test", TRUNCATED)])
def test_skip_bad_images_leaves_them_out_with_one_warning(
    cifar_folder, bad_folder, pipeline, split, relative
):
    load = LOADERS[pipeline]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count, images, labels = load(bad_folder, split, skip_bad_images=True)
    ours = [w for w in caught if issubclass(w.category, BadImagesWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert repr(os.path.join(bad_folder, relative)) in message
    assert message.startswith("Leaving out 1 of 200 image files of")
    assert ours[0].filename == __file__  # attributed to the loader's caller
    assert count == 199 and len(images) == len(labels) == 199
    # The other examples, in the order of the clean folder.
    _, clean_images, clean_labels = load(cifar_folder, split)
    index = _index_in(cifar_folder, split, relative)
    np.testing.assert_array_equal(labels, np.delete(clean_labels, index))
    np.testing.assert_array_equal(images, np.delete(clean_images, index, axis=0))


@pytest.mark.parametrize("pipeline", ["tf", "numpy"])
def test_a_clean_folder_loads_without_warnings(cifar_folder, pipeline):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadImagesWarning)
        for skip in (False, True):
            count, images, _ = LOADERS[pipeline](cifar_folder, "train", skip_bad_images=skip)
            assert count == 200 and images.shape == (200, 32, 32, 3)


def test_both_pipelines_give_the_same_error_and_examples(bad_folder):
    messages = []
    for load in LOADERS.values():
        with pytest.raises(BadImagesError) as caught:
            load(bad_folder, "test")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    with pytest.warns(BadImagesWarning):
        _, _, tf_labels = _tf_load(bad_folder, "test", skip_bad_images=True)
    with pytest.warns(BadImagesWarning):
        _, _, numpy_labels = _numpy_load(bad_folder, "test", skip_bad_images=True)
    np.testing.assert_array_equal(tf_labels, numpy_labels)


@pytest.mark.parametrize("pipeline", ["tf", "numpy"])
def test_every_file_is_checked(cifar_folder, tmp_path, pipeline):
    # Bad files last in sorted order, last in dataset order and in the middle;
    # the first image is good.
    root = tmp_path / "data"
    shutil.copytree(cifar_folder, root)
    paths, *_ = list_image_folder(str(root), "train", check=False)
    last_sorted = root / "train" / "truck" / "0019.jpg"
    chosen = {str(last_sorted), paths[-1], paths[100]}
    for path in chosen:
        data = open(path, "rb").read()
        open(path, "wb").write(data[:-1])  # only the end-of-image marker is cut
    with pytest.raises(BadImagesError) as caught:
        LOADERS[pipeline](str(root), "train")
    assert {path for path, _ in caught.value.bad_images} == chosen
    assert all(reason.startswith("truncated") for _, reason in caught.value.bad_images)
    with pytest.warns(BadImagesWarning):
        count, _, _ = LOADERS[pipeline](str(root), "train", skip_bad_images=True)
    assert count == 200 - len(chosen)


@pytest.mark.parametrize("pipeline", ["tf", "numpy"])
def test_a_bad_first_image_sets_neither_the_size_nor_the_error(cifar_folder, tmp_path, pipeline):
    # The first image (sorted order) is bad: the default size is the next
    # one's, and the error is the full check's, not a failure reading its size.
    root = tmp_path / "data"
    shutil.copytree(cifar_folder, root)
    folder = root / "train" / "airplane"
    (folder / "0000.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    Image.open(folder / "0001.jpg").resize((48, 40)).save(folder / "0001.jpg")
    assert image_folder_size(str(root), "train") == (40, 48)
    with pytest.raises(BadImagesError, match="0000.jpg"):
        LOADERS[pipeline](str(root), "train")
    with pytest.warns(BadImagesWarning, match="0000.jpg"):
        count, images, _ = LOADERS[pipeline](str(root), "train", skip_bad_images=True)
    assert count == 199 and images.shape[1:3] == (40, 48)


@pytest.mark.parametrize("pipeline", ["tf", "numpy"])
def test_many_bad_files_are_counted_and_none_good_is_an_error(cifar_folder, tmp_path, pipeline):
    root = tmp_path / "data"
    for i in range(MAX_LISTED_BAD_IMAGES + 5):
        (root / "train" / "cat").mkdir(parents=True, exist_ok=True)
        (root / "train" / "cat" / f"{i:02d}.jpg").write_bytes(b"junk")
    with pytest.raises(
        BadImagesError, match=r"^None of the 25 image files.*; and 5 more\.$"
    ) as caught:
        LOADERS[pipeline](str(root), "train", skip_bad_images=True)
    assert len(caught.value.bad_images) == 25
    copy = pickle.loads(pickle.dumps(caught.value))  # e.g. from a worker process
    assert str(copy) == str(caught.value) and copy.bad_images == caught.value.bad_images
    assert str(caught.value).count(".jpg'") == MAX_LISTED_BAD_IMAGES
    with pytest.raises(BadImagesError, match="None of the 25"):
        image_folder_size(str(root), "train")
    shutil.copy(
        os.path.join(cifar_folder, "train", "cat", "0000.jpg"), root / "train" / "cat" / "zz.jpg"
    )
    with pytest.raises(BadImagesError, match=r"^25 of 26 image files.*; and 5 more\. Replace"):
        LOADERS[pipeline](str(root), "train")


# ## check_image against TensorFlow's decoder


def _encoded(image, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoded_images(cifar_folder):
    """A real CIFAR JPEG as stored, and re-encoded at 224 px in several ways."""
    path = os.path.join(cifar_folder, "train", "cat", "0000.jpg")
    image = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC)
    return {
        "cifar.jpg": open(path, "rb").read(),
        "224.jpg": _encoded(image, format="JPEG", quality=90),
        "224_progressive.jpg": _encoded(image, format="JPEG", quality=90, progressive=True),
        "224_exif.jpg": _encoded(image, format="JPEG", exif=Image.Exif(), icc_profile=b"x" * 999),
        "224_gray.jpg": _encoded(image.convert("L"), format="JPEG"),
        "224.png": _encoded(image, format="PNG"),
        "224_rgba.png": _encoded(image.convert("RGBA"), format="PNG"),
        "gif.jpg": _encoded(image.convert("P"), format="GIF"),
        "bmp.jpg": _encoded(image, format="BMP"),
        "webp.jpg": _encoded(image, format="WEBP"),
    }


def _tf_decodes(data):
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except tf.errors.InvalidArgumentError:
        return False
    return True


def _check(tmp_path, data, name="image.jpg"):
    path = tmp_path / name
    path.write_bytes(data)
    return check_image(str(path))


def test_good_images_pass(tmp_path, encoded_images):
    for name, data in encoded_images.items():
        assert _check(tmp_path, data, name) is None, name


def test_the_check_agrees_with_tensorflow_on_damaged_files(tmp_path, encoded_images):
    # Cut short anywhere (the last byte included) or overwritten in a few
    # bytes: a file passes the check exactly when tf.io.decode_image reads it.
    rng = np.random.default_rng(0)
    for name in ["cifar.jpg", "224.jpg", "224_progressive.jpg", "224.png"]:
        data = encoded_images[name]
        damaged = [data[: len(data) - cut] for cut in (1, 2, 3, 10, 100)]
        damaged += [data[: int(len(data) * f)] for f in (0.01, 0.1, 0.5, 0.9)]
        for _ in range(40):
            copy = bytearray(data)
            start = int(rng.integers(len(data) // 4, len(data) - 4))
            copy[start : start + 3] = rng.bytes(3)
            damaged.append(bytes(copy))
        for i, bad in enumerate(damaged):
            reason = _check(tmp_path, bad)
            assert (reason is None) == _tf_decodes(bad), (name, i, reason)
        assert all(_check(tmp_path, bad) for bad in damaged[:9])  # every truncation


def test_a_jpeg_segment_past_the_end_is_found(tmp_path, encoded_images):
    # A comment marker in the entropy-coded data whose length runs past the
    # end: Pillow decodes the file (grey past the marker), TensorFlow fails.
    data = bytearray(encoded_images["224.jpg"])
    middle = len(data) // 2
    data[middle : middle + 4] = b"\xff\xfe\x7f\xff"
    data = bytes(data)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    assert not _tf_decodes(data)
    assert "runs past the end of the file" in _check(tmp_path, data)


def test_truncation_is_found_even_if_pillow_loads_truncated_images(
    tmp_path, encoded_images, monkeypatch
):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for name in ["cifar.jpg", "224_progressive.jpg", "224.png"]:
        data = encoded_images[name]
        for cut in (1, 2, len(data) // 2):
            assert _check(tmp_path, data[:-cut]).startswith("truncated"), (name, cut)


def test_other_failures_have_reasons(tmp_path, encoded_images):
    image = Image.open(io.BytesIO(encoded_images["224.png"]))
    assert "a TIFF image" in _check(tmp_path, _encoded(image, format="TIFF"))
    assert _check(tmp_path, b"") == "empty file"
    assert "Pillow cannot identify it" in _check(tmp_path, np.random.default_rng(1).bytes(500))
    (tmp_path / "folder.jpg").mkdir()
    assert check_image(str(tmp_path / "folder.jpg")).startswith("cannot be read")
    assert check_image(str(tmp_path / "missing.jpg")).startswith("cannot be read")


def test_find_bad_images_keeps_the_order_with_any_number_of_threads(tmp_path, cifar_folder):
    paths, *_ = list_image_folder(cifar_folder, "test", check=False)
    paths = list(paths[:150])
    for i in (0, 77, 149):
        bad = tmp_path / f"bad{i}.jpg"
        bad.write_bytes(b"junk")
        paths[i] = str(bad)
    expected = [paths[0], paths[77], paths[149]]
    for threads in (1, 2, 16):
        assert [path for path, _ in find_bad_images(paths, num_threads=threads)] == expected
    assert find_bad_images([]) == []
