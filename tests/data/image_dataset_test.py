"""Tests of the input pipelines, on real CIFAR-10 JPEGs (no download)."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_simclr.data import DatasetInfo
from keras_simclr.data import dataset_arrays
from keras_simclr.data import evaluation_dataset
from keras_simclr.data import load_arrays
from keras_simclr.data import load_image_folder
from keras_simclr.data import load_tfds
from keras_simclr.data import pretraining_dataset
from keras_simclr.data import take_examples
from tests.conftest import decode_cifar

CIFAR_CLASSES = [
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


def _pairs(dataset):
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    return np.stack(images), np.array(labels)


# ## Image folders


def test_image_folder_reads_real_cifar_jpegs(cifar_folder):
    train = load_image_folder(cifar_folder, "train")
    test = load_image_folder(cifar_folder, "test")
    for data in (train, test):
        assert isinstance(data, DatasetInfo)
        assert data.num_examples == 200
        assert data.num_classes == 10
        assert data.class_names == CIFAR_CLASSES
        assert data.image_size == (32, 32)
        image_spec, label_spec = data.dataset.element_spec
        assert image_spec.dtype == tf.uint8
        assert label_spec.dtype == tf.int32
        assert tuple(image_spec.shape) == (32, 32, 3)
    images, labels = _pairs(train.dataset)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [20] * 10)
    # Real photos, not blanks: a spread of pixel values.
    assert 60 < images.mean() < 200 and images.std() > 30


def test_image_folder_labels_match_the_class_folder_of_each_file(cifar_folder):
    data = load_image_folder(cifar_folder, "test")
    # Decode every file with TensorFlow's JPEG decoder and remember its folder.
    files, file_labels = [], []
    for label, name in enumerate(CIFAR_CLASSES):
        folder = os.path.join(cifar_folder, "test", name)
        for file in sorted(os.listdir(folder)):
            raw = tf.io.read_file(os.path.join(folder, file))
            files.append(tf.io.decode_jpeg(raw, channels=3).numpy().astype("int32"))
            file_labels.append(label)
    files = np.stack(files)
    file_labels = np.array(file_labels)
    images, labels = _pairs(data.dataset)
    matched = []
    for image, label in zip(images, labels):
        distance = np.abs(files - image.astype("int32")).reshape(len(files), -1).max(axis=1)
        best = int(np.argmin(distance))
        assert distance[best] <= 1, distance[best]
        assert file_labels[best] == label
        matched.append(best)
    # Every file appears exactly once.
    assert sorted(matched) == list(range(200))


def _write_mixed_size_folder(root):
    """Real CIFAR JPEGs resized with Pillow to several sizes: root/train/<class>/."""
    images, labels = decode_cifar("train", 12)
    sizes = [(48, 40), (32, 32), (24, 20), (64, 56)]  # (width, height) for Pillow
    written = []
    for i, (image, label) in enumerate(zip(images, labels)):
        name = ["airplane", "bird", "cat"][i % 3]
        folder = os.path.join(root, "train", name)
        os.makedirs(folder, exist_ok=True)
        resized = Image.fromarray(image).resize(sizes[i % len(sizes)], Image.BILINEAR)
        resized.save(os.path.join(folder, f"{i:04d}.jpg"), quality=95)
        written.append((name, np.asarray(resized)))
    return written


def test_image_folder_resizes_mixed_sizes_to_one_size(tmp_path):
    _write_mixed_size_folder(str(tmp_path))
    # None: the size of the first image (airplane/0000.jpg is 48 wide, 40 high).
    data = load_image_folder(str(tmp_path), "train")
    assert data.image_size == (40, 48)
    assert data.class_names == ["airplane", "bird", "cat"]
    images, labels = _pairs(data.dataset)
    assert images.shape == (12, 40, 48, 3)
    np.testing.assert_array_equal(np.bincount(labels), [4, 4, 4])

    data = load_image_folder(str(tmp_path), "train", image_size=24)
    assert data.image_size == (24, 24)
    images, _ = _pairs(data.dataset)
    assert images.shape == (12, 24, 24, 3)
    assert images.dtype == np.uint8

    data = load_image_folder(str(tmp_path), "train", image_size=(16, 20))
    images, _ = _pairs(data.dataset)
    assert images.shape == (12, 16, 20, 3)


def test_image_folder_resized_content_matches_the_source(tmp_path):
    written = _write_mixed_size_folder(str(tmp_path))
    data = load_image_folder(str(tmp_path), "train", image_size=32)
    images, _ = _pairs(data.dataset)
    references = np.stack(
        [np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR)) for _, image in written]
    ).astype("float32")
    # Each loaded image is close to the Pillow-resized source of one file.
    for image in images.astype("float32"):
        error = np.abs(references - image).mean(axis=(1, 2, 3))
        assert error.min() < 12.0, error.min()


def test_image_folder_missing_root(tmp_path):
    missing = str(tmp_path / "no_such_folder")
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        load_image_folder(missing, "train")


def test_image_folder_missing_split_lists_existing_splits(tmp_path):
    _write_mixed_size_folder(str(tmp_path))
    os.makedirs(tmp_path / "test" / "airplane")
    with pytest.raises(FileNotFoundError) as error:
        load_image_folder(str(tmp_path), "validation")
    message = str(error.value)
    assert "'validation'" in message
    assert "['test', 'train']" in message


def test_image_folder_empty_split(tmp_path):
    os.makedirs(tmp_path / "train" / "airplane")
    os.makedirs(tmp_path / "train" / "bird")
    with open(tmp_path / "train" / "bird" / "notes.txt", "w") as f:
        f.write("not an image")
    with pytest.raises(ValueError, match="holds no images"):
        load_image_folder(str(tmp_path), "train")


def test_take_examples_of_a_folder_is_class_mixed(cifar_folder):
    data = load_image_folder(cifar_folder, "train")
    subset = take_examples(data, 30)
    assert subset.num_examples == 30
    _, labels = _pairs(subset.dataset)
    assert len(labels) == 30
    # The folder is sorted by class; the first 30 files would be 2 classes.
    assert len(np.unique(labels)) >= 6
    assert np.bincount(labels, minlength=10).max() <= 10
    # count is capped at the size; non-positive counts are refused.
    assert take_examples(data, 1000).num_examples == 200
    with pytest.raises(ValueError, match="count=0"):
        take_examples(data, 0)
    # The fixed file order: the same subset on every pass.
    _, again = _pairs(subset.dataset)
    np.testing.assert_array_equal(again, labels)


def test_image_folder_order_is_the_same_on_every_pass(cifar_folder):
    data = load_image_folder(cifar_folder, "train")
    first_images, first_labels = dataset_arrays(data)
    second_images, second_labels = dataset_arrays(data)
    np.testing.assert_array_equal(first_labels, second_labels)
    np.testing.assert_array_equal(first_images, second_images)
    # Class-mixed, not sorted by class.
    assert len(np.unique(first_labels[:20])) >= 6


def test_cache_iterates_twice_equally(cifar_folder):
    data = take_examples(load_image_folder(cifar_folder, "train"), 50).cache()
    assert data.num_examples == 50
    batches = evaluation_dataset(data, 16)
    first = [(x, y) for x, y in batches.as_numpy_iterator()]
    second = [(x, y) for x, y in batches.as_numpy_iterator()]
    assert [len(y) for _, y in first] == [16, 16, 16, 2]
    for (xa, ya), (xb, yb) in zip(first, second):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert data.in_memory
    # Already cached, or too large for the limit: returned unchanged.
    assert data.cache() is data
    uncached = load_image_folder(cifar_folder, "test")
    assert not uncached.in_memory
    assert uncached.nbytes == 200 * 32 * 32 * 3
    assert uncached.cache(limit_bytes=uncached.nbytes - 1) is uncached
    assert uncached.cache(limit_bytes=uncached.nbytes).in_memory


# ## Arrays


def test_load_arrays_uint8(cifar_images):
    images, labels = cifar_images
    data = load_arrays(images[:40], labels[:40])
    assert data.num_examples == 40
    assert data.num_classes == int(labels[:40].max()) + 1
    assert data.class_names == [str(i) for i in range(data.num_classes)]
    assert data.image_size == (32, 32)
    assert data.in_memory
    np.testing.assert_array_equal(data.labels, labels[:40])
    got_images, got_labels = dataset_arrays(data)
    np.testing.assert_array_equal(got_images, images[:40])
    np.testing.assert_array_equal(got_labels, labels[:40])
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int32
    named = load_arrays(images[:4], np.array([0, 1, 2, 1]), class_names=["a", "b", "c"])
    assert named.class_names == ["a", "b", "c"] and named.num_classes == 3
    # Other integer types within [0, 255] are accepted as they are.
    wide = load_arrays(images[:4].astype("int64"), labels[:4])
    np.testing.assert_array_equal(dataset_arrays(wide)[0], images[:4])


def test_load_arrays_floats_are_scaled_to_uint8(cifar_images):
    images, _ = cifar_images
    floats = images[:8].astype("float64") / 255.0
    floats[0, 0, 0] = [0.0, 1.0, 0.5]  # 0.5 * 255 = 127.5 rounds to 128
    floats[0, 0, 1] = [0.2, 0.4, 0.6]  # 51, 102, 153
    data = load_arrays(floats.astype("float32"))
    got, labels = dataset_arrays(data)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, 0, 0], [0, 255, 128])
    np.testing.assert_array_equal(got[0, 0, 1], [51, 102, 153])
    np.testing.assert_array_equal(got[1:], images[1:8])
    np.testing.assert_array_equal(got[0, 1:], images[0, 1:])
    # No labels: all zero, unlabelled (no classes).
    np.testing.assert_array_equal(labels, np.zeros(8))
    assert data.num_classes == 0 and data.class_names == []


def test_load_arrays_errors(cifar_images):
    images, labels = cifar_images
    with pytest.raises(ValueError, match=r"images.shape=\(4, 32, 32\)"):
        load_arrays(images[:4, :, :, 0])
    with pytest.raises(ValueError, match=r"images.shape=\(4, 32, 32, 1\)"):
        load_arrays(images[:4, :, :, :1])
    with pytest.raises(ValueError, match=r"images.shape=\(0, 32, 32, 3\)"):
        load_arrays(images[:0])
    with pytest.raises(ValueError, match="values in"):
        load_arrays(images[:4].astype("float32"))  # 0-255 floats
    with pytest.raises(ValueError, match="values in"):
        load_arrays(images[:4].astype("int32") + 1)  # up to 256
    with pytest.raises(ValueError, match=r"labels.shape=\(3,\)"):
        load_arrays(images[:4], labels[:3])
    with pytest.raises(ValueError, match="class_names"):
        load_arrays(images[:4], np.array([0, 1, 2, 3]), class_names=["a", "b"])


# ## Pretraining batches


def test_pretraining_dataset_static_full_batches(cifar_images):
    images, labels = cifar_images
    data = load_arrays(images[:70], labels[:70])
    batches = pretraining_dataset(data, batch_size=16, seed=0)
    image_spec, label_spec = batches.element_spec
    assert tuple(image_spec.shape) == (16, 32, 32, 3)
    assert tuple(label_spec.shape) == (16,)
    assert image_spec.dtype == tf.uint8
    got = list(batches.as_numpy_iterator())
    assert len(got) == 70 // 16
    assert all(x.shape == (16, 32, 32, 3) for x, _ in got)


def test_pretraining_dataset_reshuffles_every_epoch(cifar_images):
    images, labels = cifar_images
    data = load_arrays(images[:64], labels[:64])
    batches = pretraining_dataset(data, batch_size=16, seed=3)

    def epoch(dataset):
        return np.concatenate([x for x, _ in dataset.as_numpy_iterator()])

    first, second = epoch(batches), epoch(batches)
    # Same 64 images each epoch, in another order.
    assert first.shape == second.shape == (64, 32, 32, 3)
    key = lambda a: sorted(map(bytes, a.reshape(64, -1)))  # noqa: E731
    assert key(first) == key(second) == key(images[:64])
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, images[:64])
    # The same seed gives the same first epoch.
    again = epoch(pretraining_dataset(data, batch_size=16, seed=3))
    np.testing.assert_array_equal(again, first)


def test_pretraining_dataset_batch_larger_than_dataset(cifar_images):
    images, labels = cifar_images
    data = load_arrays(images[:10], labels[:10])
    with pytest.raises(ValueError, match="batch_size=11") as error:
        pretraining_dataset(data, batch_size=11)
    assert "10 examples" in str(error.value)
    with pytest.raises(ValueError, match="batch_size=0"):
        pretraining_dataset(data, batch_size=0)
    assert len(list(pretraining_dataset(data, batch_size=10))) == 1


# ## tfds


_LABELS = tfds.features.ClassLabel(names=CIFAR_CLASSES)


class KerasSimclrTinyCifar(tfds.core.GeneratorBasedBuilder):
    """24 train and 10 test real CIFAR-10 images, fixed size, prepared locally."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(32, 32, 3)), "label": _LABELS}
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


class KerasSimclrTinyVarying(tfds.core.GeneratorBasedBuilder):
    """6 real CIFAR-10 images resized to different sizes (like ImageNet)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3)), "label": _LABELS}
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        images, labels = decode_cifar("train", 6)
        for i in range(6):
            size = (24 + 8 * i, 32 + 4 * i)
            image = np.asarray(Image.fromarray(images[i]).resize(size[::-1]))
            yield i, {"image": image, "label": int(labels[i])}


def test_load_tfds_reads_a_locally_prepared_dataset(tmp_path):
    # tfds.load (not faked) finds the registered builder by name, prepares
    # TFRecords under data_dir (no network: the examples are generated
    # locally) and reads them back. Preparing works whether or not the
    # `importlib_resources` backport that tfds 4.9.10 uses is installed.
    data_dir = str(tmp_path / "tfds")
    data = load_tfds("keras_simclr_tiny_cifar", "train", data_dir=data_dir)
    assert data.num_examples == 24
    assert data.class_names == CIFAR_CLASSES
    assert data.num_classes == 10
    assert data.image_size == (32, 32)
    images, labels = _pairs(data.dataset)
    expected_images, expected_labels = decode_cifar("train", 24)
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)

    # A split slice, resized.
    data = load_tfds("keras_simclr_tiny_cifar", "test[:4]", data_dir=data_dir, image_size=16)
    assert data.num_examples == 4
    assert data.image_size == (16, 16)
    images, labels = _pairs(data.dataset)
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8
    source, source_labels = decode_cifar("test", 4)
    np.testing.assert_array_equal(labels, source_labels)
    expected = tf.image.resize(source, (16, 16), antialias=True).numpy()
    assert np.abs(images.astype("float32") - expected).max() <= 1.0


def test_load_tfds_varying_sizes_need_image_size(tmp_path):
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(ValueError, match="image_size=None"):
        load_tfds("keras_simclr_tiny_varying", "train", data_dir=data_dir)
    data = load_tfds("keras_simclr_tiny_varying", "train", data_dir=data_dir, image_size=(20, 28))
    images, _ = _pairs(data.dataset)
    assert images.shape == (6, 20, 28, 3)
    assert images.dtype == np.uint8
