"""`load_image_folder` and its folder rules, in both implementations, on real CIFAR-10 JPEGs."""

import glob
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_simclr.data import BadImagesError
from keras_simclr.data import image_folder_size
from keras_simclr.data import load_image_folder
from keras_simclr.data.image_folder import list_image_folder

# Pillow (in_memory=True) decodes JPEGs with libjpeg-turbo's accurate integer
# IDCT (the same pixels as tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE"),
# checked exactly below); the tf.data implementation decodes with
# TensorFlow's default, the fast integer IDCT. On the CIFAR-10 JPEGs the two
# differ by at most 5 levels (mean under 1): that is the tolerance between
# the implementations.
JPEG_DECODER_MAX_DIFF = 6
JPEG_DECODER_MEAN_DIFF = 1.0


def _pil_images(folder):
    """Every JPEG under folder/<class>/ decoded by Pillow, with its class name."""
    paths = sorted(glob.glob(os.path.join(folder, "*", "*.jpg")))
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    classes = [os.path.basename(os.path.dirname(p)) for p in paths]
    return images, classes


@pytest.mark.parametrize("split", ["train", "test"])
def test_reads_the_real_cifar_folder(cifar_folder, cifar_npz, split):
    info = load_image_folder(cifar_folder, split)
    expected_classes = [str(c) for c in np.load(cifar_npz)["classes"]]
    assert info.num_examples == 200
    assert info.num_classes == 10
    assert info.class_names == sorted(expected_classes)
    assert info.image_size == (32, 32)
    image_spec, label_spec = info.dataset.element_spec
    assert tuple(image_spec.shape) == (32, 32, 3) and image_spec.dtype.name == "uint8"
    assert tuple(label_spec.shape) == () and label_spec.dtype.name == "int32"

    images, labels = info.arrays()
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [20] * 10)
    # Real photos, not blanks: a spread of pixel values.
    assert 60 < images.mean() < 200 and images.std() > 30
    # Match each element to its file (Pillow's JPEG decoder differs from
    # TensorFlow's by a few levels): the label must name the file's folder.
    oracle, folder_classes = _pil_images(os.path.join(cifar_folder, split))
    distance = np.abs(
        images.reshape(200, 1, -1).astype(np.int16) - oracle.reshape(1, 200, -1)
    ).mean(axis=-1)
    match = distance.argmin(axis=1)
    assert np.all(distance[np.arange(200), match] < 1.5)
    assert sorted(match.tolist()) == list(range(200))  # every file exactly once
    assert [info.class_names[label] for label in labels] == [folder_classes[m] for m in match]
    # Stored in a fixed, class-mixed order: the same on every pass.
    again, _ = info.arrays()
    np.testing.assert_array_equal(images, again)
    assert len(set(labels[:30].tolist())) >= 8


def test_elements_are_tensorflows_decoding_of_each_file(cifar_folder):
    # Against TensorFlow's own JPEG decoder (the one the tf.data pipeline
    # uses), each element is one file, within one level, with its label.
    import tensorflow as tf

    info = load_image_folder(cifar_folder, "test")
    files, file_classes = [], []
    for path in sorted(glob.glob(os.path.join(cifar_folder, "test", "*", "*.jpg"))):
        files.append(tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy())
        file_classes.append(os.path.basename(os.path.dirname(path)))
    files = np.stack(files).astype(np.int32)
    images, labels = info.arrays()
    matched = []
    for image, label in zip(images, labels):
        distance = np.abs(files - image.astype(np.int32)).reshape(len(files), -1).max(axis=1)
        best = int(np.argmin(distance))
        assert distance[best] <= 1, distance[best]
        assert file_classes[best] == info.class_names[label]
        matched.append(best)
    assert sorted(matched) == list(range(200))  # every file exactly once


@pytest.mark.parametrize("in_memory", [False, True])
def test_take_keeps_the_first_examples(cifar_folder, in_memory):
    info = load_image_folder(cifar_folder, "train", in_memory=in_memory)
    images, labels = info.arrays()
    first = info.take(50)
    assert first.num_examples == 50 and type(first) is type(info)
    first_images, first_labels = first.arrays()
    np.testing.assert_array_equal(first_images, images[:50])
    np.testing.assert_array_equal(first_labels, labels[:50])
    # The folder is sorted by class; the first 30 examples mix them.
    assert np.bincount(labels[:30], minlength=10).max() <= 10
    assert info.take(10_000).num_examples == 200
    with pytest.raises(ValueError, match="count=0"):
        info.take(0)


@pytest.fixture
def mixed_folder(cifar_folder, tmp_path):
    """Real JPEGs of two classes re-saved at mixed sizes, and one grayscale PNG."""
    root = tmp_path / "mixed"
    sizes = [(40, 48), (32, 32), (64, 64), (17, 23), (64, 64)]  # (height, width)
    originals = {}
    for class_name in ("cat", "dog"):
        os.makedirs(root / "train" / class_name)
        sources = sorted(glob.glob(os.path.join(cifar_folder, "train", class_name, "*.jpg")))
        for i, (source, (height, width)) in enumerate(zip(sources, sizes)):
            image = Image.open(source).convert("RGB")
            originals[(class_name, i)] = np.asarray(image)
            image.resize((width, height), Image.BICUBIC).save(
                root / "train" / class_name / f"{i:02d}.jpg", quality=95
            )
    gray = Image.open(sources[-1]).convert("L")
    gray.save(root / "train" / "dog" / "99.png")
    return str(root), originals, np.asarray(gray)


def test_mixed_sizes_come_out_at_one_size(mixed_folder):
    root, originals, gray = mixed_folder
    # Default: the size of the first image (train/cat/00.jpg is 40 x 48).
    info = load_image_folder(root, "train")
    assert info.image_size == (40, 48)
    assert info.num_examples == 11 and info.class_names == ["cat", "dog"]
    images, labels = info.arrays()
    assert images.shape == (11, 40, 48, 3)
    np.testing.assert_array_equal(np.bincount(labels), [5, 6])
    images, _ = load_image_folder(root, "train", image_size=(16, 20)).arrays()
    assert images.shape == (11, 16, 20, 3) and images.dtype == np.uint8

    info = load_image_folder(root, "train", image_size=32)
    images, labels = info.arrays()
    assert images.shape == (11, 32, 32, 3)
    # The 64 x 64 copies, brought back to 32 x 32, are close to the originals
    # (the JPEG round trip and two resamplings cost a few levels), and each
    # matches its own original far better than any other image.
    originals_array = np.stack(list(originals.values())).astype(np.float32)
    for key in [("cat", 2), ("dog", 4)]:
        errors = np.abs(images.astype(np.float32)[:, None] - originals_array[None]).mean(
            axis=(2, 3, 4)
        )
        position = list(originals).index(key)
        best = errors[:, position].argmin()
        assert errors[best, position] < 8.0
        assert np.sort(errors[best])[1] > 2 * errors[best, position]
    # The grayscale PNG is read as RGB: three equal channels.
    grays = [
        im
        for im in images
        if np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])
    ]
    assert len(grays) == 1
    np.testing.assert_array_equal(grays[0][..., 0], gray)


def test_missing_root_is_an_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(missing, "train")


def test_empty_root_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no 'train' split.*no sub-folders"):
        load_image_folder(str(tmp_path), "train")


def test_missing_split_lists_the_splits(cifar_folder):
    with pytest.raises(FileNotFoundError, match=r"'validation'.*\['test', 'train'\]"):
        load_image_folder(cifar_folder, "validation")


def test_empty_split_is_an_error(tmp_path):
    os.makedirs(tmp_path / "train" / "cat")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no images"):
        load_image_folder(str(tmp_path), "train")


def test_images_without_class_folders_are_an_error(cifar_folder, tmp_path):
    os.makedirs(tmp_path / "train")
    for source in sorted(glob.glob(os.path.join(cifar_folder, "train", "cat", "*.jpg")))[:3]:
        shutil.copy(source, tmp_path / "train")
    with pytest.raises(ValueError, match="holds 3 images directly"):
        load_image_folder(str(tmp_path), "train")


@pytest.mark.parametrize("image_size", [0, (32,), (32, -1), "32", (2.5, 3)])
def test_bad_image_size_is_an_error(cifar_folder, image_size):
    with pytest.raises(ValueError, match="Received: image_size="):
        load_image_folder(cifar_folder, "train", image_size=image_size)


# ## The same examples in both implementations


@pytest.fixture(scope="module")
def mixed_cifar_folder(cifar_folder, tmp_path_factory):
    """The CIFAR folder with a 40 x 48 first image, a 64 x 64 one and a grayscale PNG."""
    root = tmp_path_factory.mktemp("numpy_mixed") / "data"
    shutil.copytree(cifar_folder, root)
    folder = root / "train" / "airplane"
    names = sorted(os.listdir(folder))
    Image.open(folder / names[0]).resize((48, 40)).save(folder / names[0])
    Image.open(folder / names[1]).resize((64, 64)).save(folder / names[1])
    Image.open(folder / names[2]).resize((24, 20)).convert("L").save(folder / "zz_gray.png")
    return str(root)


def _tf_path(root, split, image_size=None):
    info = load_image_folder(root, split, image_size=image_size)
    images, labels = info.arrays()
    return info, images, labels


@pytest.mark.parametrize("split", ["train", "test"])
def test_same_examples_as_the_tf_path(cifar_folder, split):
    info, tf_images, tf_labels = _tf_path(cifar_folder, split)
    data = load_image_folder(cifar_folder, split, in_memory=True)
    assert data.class_names == info.class_names and data.num_classes == 10
    assert data.image_size == info.image_size == (32, 32)
    assert data.images.dtype == np.uint8 and data.images.shape == (200, 32, 32, 3)
    assert data.labels.dtype == np.int32
    # The same examples in the same (class-mixed) order, so the same labels.
    np.testing.assert_array_equal(data.labels, tf_labels)
    assert len(set(data.labels[:20].tolist())) > 5
    difference = np.abs(data.images.astype(np.int16) - tf_images.astype(np.int16))
    assert difference.max() <= JPEG_DECODER_MAX_DIFF
    assert difference.mean() < JPEG_DECODER_MEAN_DIFF


def test_pixels_equal_tensorflow_accurate_jpeg_decoding(cifar_folder):
    import tensorflow as tf

    paths, *_ = list_image_folder(cifar_folder, "test", check=False)
    data = load_image_folder(cifar_folder, "test", in_memory=True)
    for path, image in zip(paths[:50], data.images[:50]):
        expected = tf.io.decode_jpeg(
            tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE"
        ).numpy()
        np.testing.assert_array_equal(image, expected)


def test_mixed_sizes_resize_like_the_tf_path(mixed_cifar_folder):
    # Default size: the first image's (train/airplane, first file: 40 x 48).
    assert image_folder_size(mixed_cifar_folder, "train") == (40, 48)
    for image_size in [None, 40, (32, 32)]:
        info, tf_images, tf_labels = _tf_path(mixed_cifar_folder, "train", image_size)
        data = load_image_folder(mixed_cifar_folder, "train", image_size=image_size, in_memory=True)
        assert data.image_size == info.image_size
        assert data.num_examples == info.num_examples == 201
        np.testing.assert_array_equal(data.labels, tf_labels)
        difference = np.abs(data.images.astype(np.int16) - tf_images.astype(np.int16))
        assert difference.max() <= JPEG_DECODER_MAX_DIFF
        assert difference.mean() < JPEG_DECODER_MEAN_DIFF
    # The grayscale PNG (lossless, no JPEG decoder) is read as RGB.
    data = load_image_folder(mixed_cifar_folder, "train", image_size=(20, 24), in_memory=True)
    gray = np.asarray(
        Image.open(os.path.join(mixed_cifar_folder, "train", "airplane", "zz_gray.png"))
    )
    matches = [im for im in data.images if np.array_equal(im, np.repeat(gray[..., None], 3, -1))]
    assert len(matches) == 1


def test_errors_match_the_tf_path(cifar_folder, tmp_path):
    def messages(*args, **kwargs):
        caught = []
        for in_memory in (False, True):
            with pytest.raises((FileNotFoundError, ValueError)) as info:
                load_image_folder(*args, in_memory=in_memory, **kwargs)
            caught.append((info.type, str(info.value)))
        assert caught[0] == caught[1]
        return caught[1]

    assert messages(str(tmp_path / "nowhere"), "train")[0] is FileNotFoundError
    os.makedirs(tmp_path / "empty")
    assert "no sub-folders" in messages(str(tmp_path / "empty"), "train")[1]
    error, message = messages(cifar_folder, "validation")
    assert error is FileNotFoundError and "['test', 'train']" in message
    os.makedirs(tmp_path / "data" / "train" / "cat")
    assert "holds no images" in messages(str(tmp_path / "data"), "train")[1]
    loose = tmp_path / "loose" / "train"
    os.makedirs(loose)
    for i, name in enumerate(sorted(os.listdir(os.path.join(cifar_folder, "train", "cat")))[:3]):
        shutil.copy(os.path.join(cifar_folder, "train", "cat", name), loose / f"{i}.jpg")
    assert "holds 3 images directly" in messages(str(tmp_path / "loose"), "train")[1]
    assert "Received: image_size=" in messages(cifar_folder, "train", image_size=0)[1]
    broken = tmp_path / "broken" / "train" / "cat"
    os.makedirs(broken)
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    error, message = messages(str(tmp_path / "broken"), "train")
    assert issubclass(error, BadImagesError)
    assert "a.jpg" in message and "cannot identify" in message
