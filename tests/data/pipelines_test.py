import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.data import dataset_arrays
from keras_simclr.data import evaluation_dataset
from keras_simclr.data import load_arrays
from keras_simclr.data import load_image_folder
from keras_simclr.data import pretraining_dataset


def _epoch(dataset):
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]), batches


def _rows(images):
    return {image.tobytes() for image in images}


def test_batches_are_static_shuffled_per_epoch_and_cached(cifar_folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(cifar_folder, root)
    info = load_image_folder(str(root), "train").cache()
    assert info.in_memory
    all_images, all_labels = dataset_arrays(info)  # the first pass fills the cache

    train = pretraining_dataset(info, 64, seed=1)
    images_spec, labels_spec = train.element_spec
    assert tuple(images_spec.shape) == (64, 32, 32, 3) and images_spec.dtype == tf.uint8
    assert tuple(labels_spec.shape) == (64,) and labels_spec.dtype == tf.int32

    # Decoded once: with the files gone, every later pass reads memory.
    shutil.rmtree(root)
    first, first_labels, batches = _epoch(train)
    second, second_labels, _ = _epoch(train)
    assert [b[0].shape[0] for b in batches] == [64, 64, 64]  # 200 // 64, remainder dropped
    assert len(_rows(first)) == 192 and _rows(first) <= _rows(all_images)
    assert not np.array_equal(first, second)  # reshuffled every epoch
    # Labels stay with their images.
    label_of = {image.tobytes(): label for image, label in zip(all_images, all_labels)}
    assert [label_of[image.tobytes()] for image in second] == second_labels.tolist()

    evaluation = evaluation_dataset(info, 64)
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
    train = pretraining_dataset(info, 64, seed=1, cache=False)
    assert len(list(train)) == 3
    shutil.rmtree(root)
    with pytest.raises(tf.errors.NotFoundError):
        list(train)


def test_cache_respects_the_limit(cifar_folder):
    info = load_image_folder(cifar_folder, "train")
    assert info.nbytes == 200 * 32 * 32 * 3
    assert not info.cache(limit_bytes=info.nbytes - 1).in_memory
    assert info.cache(limit_bytes=info.nbytes).in_memory
    cached = info.cache()
    assert cached.cache() is cached  # never cached twice


def test_shuffle_is_reproducible_from_the_seed(cifar_images):
    info = load_arrays(*cifar_images)
    a = _epoch(pretraining_dataset(info, 32, seed=7))[0]
    b = _epoch(pretraining_dataset(info, 32, seed=7))[0]
    c = _epoch(pretraining_dataset(info, 32, seed=8))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # A uniform shuffle of the in-memory data: every image once per epoch.
    assert len(_rows(a)) == 256 and _rows(a) == _rows(cifar_images[0])


def test_shuffle_mixes_the_whole_dataset(cifar_images):
    # Where the images of the first batch come from, over many epochs: a
    # uniform shuffle draws each of the 256 positions with probability 1/8.
    images, labels = cifar_images
    info = load_arrays(images, np.arange(256) % 10)
    position = {image.tobytes(): i for i, image in enumerate(images)}
    train = pretraining_dataset(info, 32, seed=0)
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
    info = load_arrays(*cifar_images)
    train = pretraining_dataset(info, 100, seed=0, repeat=True)
    assert tuple(train.element_spec[0].shape) == (100, 32, 32, 3)
    batches = [images.numpy() for images, _ in train.take(5)]  # 2 epochs hold 2.56 batches each
    assert len(batches) == 5
    assert _rows(np.concatenate(batches)) == _rows(cifar_images[0])


def test_batch_size_larger_than_the_dataset_is_an_error(cifar_images):
    info = load_arrays(*cifar_images)
    with pytest.raises(ValueError, match=r"batch_size=512.*256 examples"):
        pretraining_dataset(info, 512)
    with pytest.raises(ValueError, match="batch_size=0"):
        pretraining_dataset(info, 0)
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluation_dataset(info, 0)
    with pytest.raises(ValueError, match="shuffle_buffer=0"):
        pretraining_dataset(info, 32, shuffle_buffer=0)
    # Evaluation keeps every example: one batch smaller than asked.
    assert [images.shape[0] for images, _ in evaluation_dataset(info, 512)] == [256]
