import glob
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_simclr.data import dataset_arrays
from keras_simclr.data import load_image_folder
from keras_simclr.data import take_examples


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

    images, labels = dataset_arrays(info)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [20] * 10)
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
    again, _ = dataset_arrays(info)
    np.testing.assert_array_equal(images, again)
    assert len(set(labels[:30].tolist())) >= 8


def test_take_examples_keeps_the_first_examples(cifar_folder):
    info = load_image_folder(cifar_folder, "train")
    images, labels = dataset_arrays(info)
    first = take_examples(info, 50)
    assert first.num_examples == 50
    first_images, first_labels = dataset_arrays(first)
    np.testing.assert_array_equal(first_images, images[:50])
    np.testing.assert_array_equal(first_labels, labels[:50])
    assert take_examples(info, 10_000).num_examples == 200
    with pytest.raises(ValueError, match="count=0"):
        take_examples(info, 0)


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
    images, labels = dataset_arrays(info)
    assert images.shape == (11, 40, 48, 3)
    np.testing.assert_array_equal(np.bincount(labels), [5, 6])

    info = load_image_folder(root, "train", image_size=32)
    images, labels = dataset_arrays(info)
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
    grays = [im for im in images if np.array_equal(im[..., 0], im[..., 1])
             and np.array_equal(im[..., 1], im[..., 2])]
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
