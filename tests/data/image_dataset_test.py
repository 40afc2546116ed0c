"""The `ImageDataset` interface: both implementations give the same examples and batches."""

import keras
import numpy as np
import pytest

import keras_simclr.data
from keras_simclr.data import ImageDataset
from keras_simclr.data import load_arrays
from keras_simclr.data.array_image_dataset import ArrayImageDataset
from keras_simclr.data.image_dataset import check_batch_size
from keras_simclr.data.image_dataset import check_count
from keras_simclr.data.tf_image_dataset import TFImageDataset
from keras_simclr.evaluation import evaluate_knn
from keras_simclr.evaluation import extract_features


@pytest.fixture(scope="module")
def both(cifar_images):
    images, labels = cifar_images
    return TFImageDataset.from_arrays(images, labels), load_arrays(images, labels)


def test_the_interface_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        ImageDataset()


def test_the_package_exports_the_interface_and_one_loader_per_source():
    assert sorted(keras_simclr.data.__all__) == [
        "BadImagesError",
        "BadImagesWarning",
        "ImageDataset",
        "ImageFiles",
        "find_images",
        "image_folder_size",
        "labeled_subset",
        "load_arrays",
        "load_image_folder",
        "load_tfds",
    ]
    for name in keras_simclr.data.__all__:
        assert getattr(keras_simclr.data, name).__name__ == name
    with pytest.raises(AttributeError, match="pretraining_dataset"):
        keras_simclr.data.pretraining_dataset  # noqa: B018


def test_same_examples_take_and_in_memory(both, cifar_images):
    images, labels = cifar_images
    for data in both:
        assert isinstance(data, ImageDataset)
        assert data.num_examples == 256 and data.num_classes == 10
        assert data.class_names == [str(i) for i in range(10)] and data.image_size == (32, 32)
        assert data.nbytes == 256 * 32 * 32 * 3
        np.testing.assert_array_equal(data.arrays()[0], images)
        np.testing.assert_array_equal(data.arrays()[1], labels)
        np.testing.assert_array_equal(data.read_labels(), labels)
        first = data.take(10)
        assert type(first) is type(data) and first.num_examples == 10
        np.testing.assert_array_equal(first.arrays()[0], images[:10])
        memory = data.in_memory()
        assert isinstance(memory, ArrayImageDataset) and memory.class_names == data.class_names
        np.testing.assert_array_equal(memory.images, images)
        np.testing.assert_array_equal(memory.labels, labels)


def test_training_batches_are_full_and_cover_the_examples(both, cifar_images):
    images = cifar_images[0]
    rows = {image.tobytes() for image in images}
    for data in both:
        batches = [(np.asarray(x), np.asarray(y)) for x, y in data.training_batches(100, seed=0)]
        assert [x.shape for x, _ in batches] == [(100, 32, 32, 3)] * 2  # 56 dropped
        assert all(x.dtype == np.uint8 and y.dtype == np.int32 for x, y in batches)
        seen = {image.tobytes() for x, _ in batches for image in x}
        assert len(seen) == 200 and seen <= rows


def test_one_batch_size_check(both):
    messages = []
    for data in both:
        with pytest.raises(ValueError, match="batch_size=257") as caught:
            data.training_batches(257)
        messages.append(str(caught.value))
        for batches in (data.training_batches, data.evaluation_batches):
            with pytest.raises(ValueError, match="batch_size=0"):
                batches(0)
    assert messages[0] == messages[1]
    assert "256 examples" in messages[0] and "num_examples=256" in messages[0]
    assert check_batch_size(np.int64(8), 8) == 8
    with pytest.raises(ValueError, match="batch_size=True"):
        check_batch_size(True)
    assert check_count(500, 256) == 256
    with pytest.raises(ValueError, match="count=1.5"):
        check_count(1.5, 256)


def test_evaluation_batches_feed_the_evaluation_alike(both, cifar_images):
    images, labels = cifar_images
    for data in both:
        batches = [(np.asarray(x), np.asarray(y)) for x, y in data.evaluation_batches(100)]
        assert [len(y) for _, y in batches] == [100, 100, 56]
        np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
        np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    encoder = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D()])
    features = [extract_features(encoder, data.evaluation_batches(100)) for data in both]
    expected, _ = extract_features(encoder, (images, labels), batch_size=100)
    for got, got_labels in features:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(got_labels, labels)
    train, test = (
        [data.take(200) for data in both],
        [data.select(np.arange(200, 256)) for data in both],
    )
    accuracies = [
        evaluate_knn(encoder, a.evaluation_batches(64), b.evaluation_batches(64), 10, k=5)
        for a, b in zip(train, test)
    ]
    assert accuracies[0] == accuracies[1]
    assert accuracies[0] == evaluate_knn(
        encoder, train[1].arrays(), test[1].arrays(), 10, k=5, batch_size=64
    )
