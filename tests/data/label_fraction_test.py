import numpy as np
import pytest

from keras_simclr.data import dataset_arrays
from keras_simclr.data import dataset_labels
from keras_simclr.data import labeled_subset
from keras_simclr.data import load_arrays
from keras_simclr.data import load_image_folder
from keras_simclr.data import pretraining_dataset
from keras_simclr.data import select_examples
from keras_simclr.data import subset_dataset


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


def test_subset_of_an_image_folder(cifar_folder):
    info = load_image_folder(cifar_folder, "train").cache()
    all_images, all_labels = dataset_arrays(info)
    subset = subset_dataset(info, 0.1, seed=0)
    assert subset.num_examples == 20 and subset.class_names == info.class_names
    images, labels = dataset_arrays(subset)
    expected = labeled_subset(all_labels, 0.1, seed=0)
    np.testing.assert_array_equal(images, all_images[expected])
    np.testing.assert_array_equal(labels, all_labels[expected])
    np.testing.assert_array_equal(subset.labels, labels)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [2] * 10)
    # It feeds the pipelines like any other DatasetInfo.
    batches = list(pretraining_dataset(subset, 8, seed=0))
    assert len(batches) == 2


def test_subset_of_arrays_and_select_examples(cifar_images):
    images, labels = cifar_images
    info = load_arrays(images, labels)
    subset = subset_dataset(info, 0.5, seed=1)
    expected = labeled_subset(labels, 0.5, seed=1)
    np.testing.assert_array_equal(dataset_arrays(subset)[0], images[expected])
    np.testing.assert_array_equal(dataset_labels(subset), labels[expected])
    picked = select_examples(info, [5, 0, 255])
    np.testing.assert_array_equal(dataset_arrays(picked)[0], images[[0, 5, 255]])
    with pytest.raises(ValueError, match=r"indices in \[0, 256\]"):
        select_examples(info, [0, 256])
    with pytest.raises(ValueError, match="repeat"):
        select_examples(info, [1, 1])
