import numpy as np
import pytest

from keras_simclr.data import labeled_subset
from keras_simclr.data import load_arrays
from keras_simclr.data import load_image_folder
from keras_simclr.data.tf_image_dataset import TFImageDataset


@pytest.fixture(scope="module")
def train_labels(cifar_npz):
    return np.load(cifar_npz)["train_labels"]


@pytest.mark.parametrize("fraction, per_class", [(0.01, 50), (0.1, 500)])
def test_real_cifar_fractions_are_balanced(train_labels, fraction, per_class):
    assert len(train_labels) == 50_000
    indices = labeled_subset(train_labels, fraction, seed=0, num_classes=10)
    assert indices.dtype == np.int64
    assert len(indices) == 10 * per_class
    assert np.all(np.diff(indices) > 0)  # sorted, no repeats
    counts = np.bincount(train_labels[indices], minlength=10)
    np.testing.assert_array_equal(counts, [per_class] * 10)


def test_same_seed_same_subset_other_seed_other_subset(train_labels):
    a = labeled_subset(train_labels, 0.01, seed=3)
    b = labeled_subset(train_labels, 0.01, seed=3)
    c = labeled_subset(train_labels, 0.01, seed=4)
    np.testing.assert_array_equal(a, b)
    # Two independent 1% draws share about 1% of their examples.
    assert len(np.intersect1d(a, c)) < 30


def test_counts_round_half_up_with_at_least_one():
    # Class sizes 7, 3, 1, 25, 15: 10% is 0.7, 0.3, 0.1, 2.5, 1.5.
    labels = np.repeat(np.arange(5), [7, 3, 1, 25, 15])
    indices = labeled_subset(labels, 0.1, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[indices]), [1, 1, 1, 3, 2])
    np.testing.assert_array_equal(labeled_subset(labels, 1.0, seed=0), np.arange(len(labels)))
    # A missing class (label 1 absent) is simply skipped.
    sparse = np.array([0, 0, 2, 2, 2, 2])
    np.testing.assert_array_equal(np.bincount(sparse[labeled_subset(sparse, 0.5, 0)]), [1, 0, 2])


def test_draws_are_uniform_within_a_class():
    # Over 4000 seeds, each of 50 examples is kept with probability 0.1:
    # 400 +- 19 times (binomial standard deviation).
    labels = np.zeros(50, np.int64)
    counts = np.zeros(50)
    for seed in range(4000):
        counts[labeled_subset(labels, 0.1, seed=seed)] += 1
    assert counts.sum() == 4000 * 5
    assert np.all(np.abs(counts - 400) < 5 * 19)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_fraction_outside_the_unit_interval_is_an_error(fraction):
    with pytest.raises(ValueError, match=f"Received: fraction={fraction!r}"):
        labeled_subset(np.arange(10) % 2, fraction, seed=0)


def test_bad_labels_are_errors():
    with pytest.raises(ValueError, match=r"labels in \[0, 10\], num_classes=10"):
        labeled_subset(np.arange(11), 0.5, seed=0, num_classes=10)
    with pytest.raises(ValueError, match=r"labels in \[-1, 3\]"):
        labeled_subset(np.arange(-1, 4), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"labels.shape=\(2, 5\)"):
        labeled_subset(np.zeros((2, 5), np.int64), 0.5, seed=0)
    with pytest.raises(ValueError, match="dtype=float64"):
        labeled_subset(np.zeros(5), 0.5, seed=0)


@pytest.mark.parametrize("in_memory", [False, True])
def test_subset_of_an_image_folder(cifar_folder, in_memory):
    info = load_image_folder(cifar_folder, "train", in_memory=in_memory).cache()
    all_images, all_labels = info.arrays()
    subset = info.subset(0.1, seed=0)
    assert type(subset) is type(info)
    assert subset.num_examples == 20 and subset.class_names == info.class_names
    images, labels = subset.arrays()
    expected = labeled_subset(all_labels, 0.1, seed=0)
    np.testing.assert_array_equal(images, all_images[expected])
    np.testing.assert_array_equal(labels, all_labels[expected])
    np.testing.assert_array_equal(subset.labels, labels)  # known without reading
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [2] * 10)
    # It feeds the batches like any other dataset.
    assert len(list(subset.training_batches(8, seed=0))) == 2


@pytest.mark.parametrize("load", [load_arrays, TFImageDataset.from_arrays])
def test_subset_of_arrays_and_select(cifar_images, load):
    images, labels = cifar_images
    info = load(images, labels)
    subset = info.subset(0.5, seed=1)
    expected = labeled_subset(labels, 0.5, seed=1)
    np.testing.assert_array_equal(subset.arrays()[0], images[expected])
    np.testing.assert_array_equal(subset.read_labels(), labels[expected])
    picked = info.select([5, 0, 255])
    np.testing.assert_array_equal(picked.arrays()[0], images[[0, 5, 255]])
    with pytest.raises(ValueError, match=r"indices in \[0, 256\]"):
        info.select([0, 256])
    with pytest.raises(ValueError, match="repeat"):
        info.select([1, 1])
    with pytest.raises(ValueError, match=r"indices.shape=\(1, 2\)"):
        info.select([[0, 1]])


def test_labels_unknown_in_advance_are_read_from_the_dataset(cifar_images):
    # A tf.data dataset whose labels are not known (a tfds dataset): the
    # subset reads them once and knows them.
    images, labels = cifar_images
    info = TFImageDataset.from_arrays(images, labels)
    unknown = TFImageDataset(
        info.dataset, info.num_examples, info.num_classes, info.class_names, info.image_size
    )
    assert unknown.labels is None
    np.testing.assert_array_equal(unknown.read_labels(), labels)
    subset = unknown.subset(0.1, seed=2)
    np.testing.assert_array_equal(subset.labels, labels[labeled_subset(labels, 0.1, seed=2)])
    np.testing.assert_array_equal(subset.arrays()[1], subset.labels)
    wrong = TFImageDataset(info.dataset, 300, 10, info.class_names, info.image_size)
    with pytest.raises(ValueError, match="holds 256 examples, not the num_examples=300"):
        wrong.read_labels()
