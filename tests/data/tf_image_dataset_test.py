"""`TFImageDataset`: the tf.data implementation of `ImageDataset`."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.data import load_image_folder
from keras_simclr.data.tf_image_dataset import TFImageDataset


def _epoch(dataset):
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]), batches


def _rows(images):
    return {image.tobytes() for image in images}


def _small(**overrides):
    images = np.zeros((6, 4, 5, 3), np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    fields = dict(
        dataset=tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32))),
        num_examples=6,
        num_classes=3,
        class_names=("a", "b", "c"),
        image_size=[4, 5],
    )
    fields.update(overrides)
    return TFImageDataset(**fields)


# ## The dataset and its cache


def test_fields_are_normalised_and_frozen():
    info = _small(labels=np.array([0, 1, 2, 0, 1, 2], np.int64))
    assert info.class_names == ["a", "b", "c"]
    assert info.image_size == (4, 5)
    assert info.labels.dtype == np.int32
    assert info.nbytes == 6 * 4 * 5 * 3
    assert not info.cached
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_examples = 3
    assert "labels" not in repr(info)


def test_labels_must_match_the_count():
    with pytest.raises(ValueError, match=r"shape \(6,\). Received: labels.shape=\(5,\)"):
        _small(labels=np.zeros(5))


def test_cache_keeps_the_elements():
    info = _small()
    cached = info.cache()
    assert cached.cached and cached.num_examples == 6
    first = [label.numpy() for _, label in cached.dataset]
    second = [label.numpy() for _, label in cached.dataset]
    assert first == second == [0, 1, 2, 0, 1, 2]
    assert info.cache(limit_bytes=100) is info  # 360 bytes do not fit in 100


def test_cache_respects_the_limit(cifar_folder):
    info = load_image_folder(cifar_folder, "train")
    assert info.nbytes == 200 * 32 * 32 * 3
    assert not info.cache(limit_bytes=info.nbytes - 1).cached
    assert info.cache(limit_bytes=info.nbytes).cached
    cached = info.cache()
    assert cached.cache() is cached  # never cached twice


def test_a_cached_take_iterates_twice_equally(cifar_folder):
    data = load_image_folder(cifar_folder, "train").take(50).cache()
    assert data.num_examples == 50 and data.cached
    batches = data.evaluation_batches(16)
    first = [(x, y) for x, y in batches.as_numpy_iterator()]
    second = [(x, y) for x, y in batches.as_numpy_iterator()]
    assert [len(y) for _, y in first] == [16, 16, 16, 2]
    for (xa, ya), (xb, yb) in zip(first, second):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_from_arrays_is_in_memory_with_known_labels(cifar_images):
    images, labels = cifar_images
    info = TFImageDataset.from_arrays(images, labels)
    assert info.cached  # nothing to decode: the pipelines do not cache it again
    assert info.num_classes == 10 and info.image_size == (32, 32)
    np.testing.assert_array_equal(info.labels, labels)
    out_images, out_labels = info.arrays()
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)
    with pytest.raises(ValueError, match="class_names"):
        TFImageDataset.from_arrays(images[:4], np.array([0, 1, 2, 3]), class_names=["a", "b"])


# ## Training and evaluation batches


def test_batches_are_static_shuffled_per_epoch_and_cached(cifar_folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(cifar_folder, root)
    info = load_image_folder(str(root), "train").cache()
    assert info.cached
    all_images, all_labels = info.arrays()  # the first pass fills the cache

    train = info.training_batches(64, seed=1)
    images_spec, labels_spec = train.element_spec
    assert tuple(images_spec.shape) == (64, 32, 32, 3) and images_spec.dtype == tf.uint8
    assert tuple(labels_spec.shape) == (64,) and labels_spec.dtype == tf.int32

    # Decoded once: with the files gone, every later pass reads memory.
    shutil.rmtree(root)
    first, _, batches = _epoch(train)
    second, second_labels, _ = _epoch(train)
    assert [b[0].shape[0] for b in batches] == [64, 64, 64]  # 200 // 64, remainder dropped
    assert len(_rows(first)) == 192 and _rows(first) <= _rows(all_images)
    assert not np.array_equal(first, second)  # reshuffled every epoch
    # Labels stay with their images.
    label_of = {image.tobytes(): label for image, label in zip(all_images, all_labels)}
    assert [label_of[image.tobytes()] for image in second] == second_labels.tolist()

    evaluation = info.evaluation_batches(64)
    images, labels, batches = _epoch(evaluation)
    assert [b[0].shape[0] for b in batches] == [64, 64, 64, 8]
    np.testing.assert_array_equal(images, all_images)  # every example, in order
    np.testing.assert_array_equal(labels, all_labels)


def test_uncached_pipelines_read_the_files_again(cifar_folder, tmp_path):
    # The control for the test above: without the cache, the files are read
    # on every pass.
    root = tmp_path / "copy"
    shutil.copytree(cifar_folder, root)
    info = load_image_folder(str(root), "train")
    train = info.training_batches(64, seed=1, cache=False)
    assert len(list(train)) == 3
    shutil.rmtree(root)
    with pytest.raises(tf.errors.NotFoundError):
        list(train)


def test_shuffle_is_reproducible_from_the_seed(cifar_images):
    info = TFImageDataset.from_arrays(*cifar_images)
    a = _epoch(info.training_batches(32, seed=7))[0]
    b = _epoch(info.training_batches(32, seed=7))[0]
    c = _epoch(info.training_batches(32, seed=8))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, cifar_images[0])  # not the stored order
    # A uniform shuffle of the in-memory data: every image once per epoch.
    assert len(_rows(a)) == 256 and _rows(a) == _rows(cifar_images[0])


def test_shuffle_mixes_the_whole_dataset(cifar_images):
    # Where the images of the first batch come from, over many epochs: a
    # uniform shuffle draws each of the 256 positions with probability 1/8.
    images = cifar_images[0]
    info = TFImageDataset.from_arrays(images, np.arange(256) % 10)
    position = {image.tobytes(): i for i, image in enumerate(images)}
    train = info.training_batches(32, seed=0)
    counts = np.zeros(256)
    epochs = 40
    for _ in range(epochs):
        first_batch = next(iter(train))[0].numpy()
        for image in first_batch:
            counts[position[image.tobytes()]] += 1
    # Mean 5 per position; the first and last halves each get half the draws
    # (binomial: 640 of 1280 +- 18 at one standard deviation).
    assert abs(counts[:128].sum() - 640) < 5 * 18
    assert counts.max() <= 20


def test_repeat_gives_batches_past_one_epoch(cifar_images):
    info = TFImageDataset.from_arrays(*cifar_images)
    train = info.training_batches(100, seed=0, repeat=True)
    assert tuple(train.element_spec[0].shape) == (100, 32, 32, 3)
    batches = [images.numpy() for images, _ in train.take(5)]  # 2 epochs hold 2.56 batches each
    assert len(batches) == 5
    assert _rows(np.concatenate(batches)) == _rows(cifar_images[0])


def test_batch_size_larger_than_the_dataset_is_an_error(cifar_images):
    info = TFImageDataset.from_arrays(*cifar_images)
    with pytest.raises(ValueError, match=r"batch_size=512.*256 examples"):
        info.training_batches(512)
    with pytest.raises(ValueError, match="batch_size=0"):
        info.training_batches(0)
    with pytest.raises(ValueError, match="batch_size=0"):
        info.evaluation_batches(0)
    with pytest.raises(ValueError, match="shuffle_buffer=0"):
        info.training_batches(32, shuffle_buffer=0)
    # A batch of every example is one full batch.
    assert len(list(info.training_batches(256))) == 1
    # Evaluation keeps every example: one batch smaller than asked.
    assert [images.shape[0] for images, _ in info.evaluation_batches(512)] == [256]
