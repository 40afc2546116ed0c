import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.data import DatasetInfo


def _info(**overrides):
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
    return DatasetInfo(**fields)


def test_fields_are_normalised_and_frozen():
    info = _info(labels=np.array([0, 1, 2, 0, 1, 2], np.int64))
    assert info.class_names == ["a", "b", "c"]
    assert info.image_size == (4, 5)
    assert info.labels.dtype == np.int32
    assert info.nbytes == 6 * 4 * 5 * 3
    assert not info.in_memory
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_examples = 3
    assert "labels" not in repr(info)


def test_labels_must_match_the_count():
    with pytest.raises(ValueError, match=r"shape \(6,\). Received: labels.shape=\(5,\)"):
        _info(labels=np.zeros(5))


def test_cache_keeps_the_elements():
    info = _info()
    cached = info.cache()
    assert cached.in_memory and cached.num_examples == 6
    first = [label.numpy() for _, label in cached.dataset]
    second = [label.numpy() for _, label in cached.dataset]
    assert first == second == [0, 1, 2, 0, 1, 2]
    assert info.cache(limit_bytes=100) is info  # 360 bytes do not fit in 100
