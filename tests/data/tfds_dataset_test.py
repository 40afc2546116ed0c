"""`load_tfds` against tfds datasets prepared locally from real CIFAR-10 images.

No network: the datasets are written into a temporary `data_dir` with tfds's
own builders, and `socket.connect` is disabled while they are loaded.
"""

import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_simclr.data import load_tfds
from keras_simclr.data.tfds_dataset import _ensure_importlib_resources
from tests.conftest import CIFAR10_CLASSES
from tests.conftest import decode_cifar
from tests.data.resize_oracle import resize

TRAIN_COUNT, TEST_COUNT = 120, 40
# (height, width) of the images of the varying-size dataset, in turn.
MIXED_SIZES = [(32, 32), (40, 24), (20, 28), (64, 48)]


def _examples(split, count):
    images, labels = decode_cifar(split, count)
    return (
        images,
        labels,
        [
            (f"{split}_{i}", {"id": f"{split}_{i}", "image": image, "label": int(label)})
            for i, (image, label) in enumerate(zip(images, labels))
        ],
    )


class MixedSizeCifar(tfds.core.GeneratorBasedBuilder):
    """Real CIFAR-10 images resized to varying sizes, as a registered tfds builder."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "label": tfds.features.ClassLabel(names=CIFAR10_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, (image, label) in enumerate(zip(*_mixed_size_examples())):
            yield i, {"image": image, "label": int(label)}


def _mixed_size_examples():
    images, labels = decode_cifar("test", 20)
    resized = [
        np.asarray(Image.fromarray(image).resize(MIXED_SIZES[i % len(MIXED_SIZES)][::-1]))
        for i, image in enumerate(images)
    ]
    return resized, labels


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A data_dir holding `cifar10` (real images, fixed size) prepared offline."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    _ensure_importlib_resources()  # preparing needs it (tensorflow/datasets#11212)
    train_images, train_labels, train = _examples("train", TRAIN_COUNT)
    _, _, test = _examples("test", TEST_COUNT)
    features = tfds.features.FeaturesDict(
        {
            "id": tfds.features.Text(),
            "image": tfds.features.Image(shape=(32, 32, 3)),
            "label": tfds.features.ClassLabel(names=CIFAR10_CLASSES),
        }
    )
    # The version of the registered `cifar10` builder, so that `tfds.load`
    # finds this data where it would have prepared the real one.
    tfds.dataset_builders.store_as_tfds_dataset(
        name="cifar10",
        version=tfds.builder("cifar10", data_dir=data_dir).version,
        features=features,
        split_datasets={"train": train, "test": test},
        data_dir=data_dir,
    )
    return data_dir, train_images, train_labels


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _as_key_set(images, labels):
    return sorted((int(label), image.tobytes()) for image, label in zip(images, labels))


def test_loads_cifar10_by_name_from_data_dir(tfds_dir, no_network):
    data_dir, train_images, train_labels = tfds_dir
    info = load_tfds("cifar10", "train", data_dir=data_dir)
    assert info.num_examples == TRAIN_COUNT
    assert info.num_classes == 10 and info.class_names == CIFAR10_CLASSES
    assert info.image_size == (32, 32)
    image_spec, label_spec = info.dataset.element_spec
    assert tuple(image_spec.shape) == (32, 32, 3) and image_spec.dtype.name == "uint8"
    assert label_spec.dtype.name == "int32"
    images, labels = info.arrays()
    # tfds stores the pixels losslessly: the same images with the same labels.
    assert _as_key_set(images, labels) == _as_key_set(train_images, train_labels)

    test = load_tfds("cifar10", "test", data_dir=data_dir)
    assert test.num_examples == TEST_COUNT
    assert len(test.arrays()[0]) == TEST_COUNT


def test_split_slices_and_resizing(tfds_dir, no_network):
    data_dir, train_images, train_labels = tfds_dir
    info = load_tfds("cifar10", "train[:25%]", data_dir=data_dir)
    assert info.num_examples == TRAIN_COUNT // 4
    assert len(info.arrays()[0]) == TRAIN_COUNT // 4

    info = load_tfds("cifar10", "train", data_dir=data_dir, image_size=16)
    assert info.image_size == (16, 16)
    images, labels = info.arrays()
    assert images.shape == (TRAIN_COUNT, 16, 16, 3)
    # Each image is the NumPy re-derivation of the antialiased resize of one
    # stored image (up to rounding), with that image's label.
    expected = np.stack([resize(image, (16, 16)) for image in train_images])
    errors = np.abs(images[:, None].astype(np.int16) - expected[None]).max(axis=(2, 3, 4))
    nearest = errors.argmin(axis=1)
    assert np.all(errors[np.arange(len(images)), nearest] <= 1)
    assert sorted(nearest.tolist()) == list(range(TRAIN_COUNT))
    np.testing.assert_array_equal(labels, train_labels[nearest])


def test_images_of_varying_size_need_an_image_size(tmp_path, no_network):
    data_dir = str(tmp_path)
    with pytest.raises(ValueError, match="Received: image_size=None"):
        load_tfds("mixed_size_cifar", "train", data_dir=data_dir)
    info = load_tfds("mixed_size_cifar", "train", data_dir=data_dir, image_size=(24, 20))
    assert info.num_examples == 20 and info.image_size == (24, 20)
    images, labels = info.arrays()
    assert images.shape == (20, 24, 20, 3)
    stored, stored_labels = _mixed_size_examples()
    expected = np.stack([resize(image, (24, 20)) for image in stored])
    errors = np.abs(images[:, None].astype(np.int16) - expected[None]).max(axis=(2, 3, 4))
    nearest = errors.argmin(axis=1)
    assert np.all(errors[np.arange(20), nearest] <= 1)
    assert sorted(nearest.tolist()) == list(range(20))
    np.testing.assert_array_equal(labels, stored_labels[nearest])
    # The 32 x 32 images were shrunk and the others grown: all were resized.
    assert {image.shape[:2] for image in stored} == set(MIXED_SIZES)


def test_unknown_dataset_and_split_are_errors(tfds_dir, no_network):
    data_dir = tfds_dir[0]
    with pytest.raises(ValueError, match="no_such_dataset"):
        load_tfds("no_such_dataset", "train", data_dir=data_dir)
    with pytest.raises(ValueError, match="validation"):
        load_tfds("cifar10", "validation", data_dir=data_dir)


class KerasSimclrTinyCifar(tfds.core.GeneratorBasedBuilder):
    """24 train and 10 test real CIFAR-10 images, fixed size, prepared locally."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(names=CIFAR10_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples("train", 24),
            "test": self._generate_examples("test", 10),
        }

    def _generate_examples(self, split, count):
        images, labels = decode_cifar(split, count)
        for i in range(count):
            yield i, {"image": images[i], "label": int(labels[i])}


def test_a_registered_builder_is_prepared_and_read_in_order(tmp_path, no_network):
    # tfds.load (not faked) finds the registered builder by name, prepares
    # TFRecords under data_dir (no network: the examples are generated
    # locally) and reads them back. Preparing works whether or not the
    # `importlib_resources` backport that tfds 4.9.10 uses is installed.
    data_dir = str(tmp_path / "tfds")
    data = load_tfds("keras_simclr_tiny_cifar", "train", data_dir=data_dir)
    assert data.num_examples == 24
    assert data.class_names == CIFAR10_CLASSES
    assert data.num_classes == 10
    assert data.image_size == (32, 32)
    images, labels = data.arrays()
    expected_images, expected_labels = decode_cifar("train", 24)
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)

    # A split slice, resized.
    data = load_tfds("keras_simclr_tiny_cifar", "test[:4]", data_dir=data_dir, image_size=16)
    assert data.num_examples == 4
    assert data.image_size == (16, 16)
    images, labels = data.arrays()
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8
    source, source_labels = decode_cifar("test", 4)
    np.testing.assert_array_equal(labels, source_labels)
    expected = tf.image.resize(source, (16, 16), antialias=True).numpy()
    assert np.abs(images.astype("float32") - expected).max() <= 1.0
