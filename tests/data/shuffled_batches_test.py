"""`ShuffledBatches`: full, shuffled batches whose order depends on (seed, epoch)."""

import numpy as np
import pytest

from keras_simclr.data.shuffled_batches import ShuffledBatches


def test_batches_are_full_shuffled_and_reproducible():
    images = np.arange(103, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    labels = np.arange(103, dtype=np.int32)
    batches = ShuffledBatches(images, labels, batch_size=10, seed=7)
    assert len(batches) == 10 and batches.num_batches == 10

    def epoch(dataset):
        out = [dataset[i] for i in range(len(dataset))]
        dataset.on_epoch_end()
        return out

    first, second = epoch(batches), epoch(batches)
    for epoch_batches in (first, second):
        assert all(x.shape == (10, 2, 2, 3) and x.dtype == np.uint8 for x, _ in epoch_batches)
        assert all(y.shape == (10,) for _, y in epoch_batches)
        seen = np.concatenate([y for _, y in epoch_batches])
        assert len(set(seen.tolist())) == 100  # no repeats; 3 dropped
        # Images and labels stay paired.
        assert all(np.array_equal(x[:, 0, 0, 0], y) for x, y in epoch_batches)
    first_order = np.concatenate([y for _, y in first])
    second_order = np.concatenate([y for _, y in second])
    assert not np.array_equal(first_order, second_order)  # a new order each epoch
    assert not np.array_equal(first_order, np.sort(first_order))  # shuffled
    # The same seed gives the same sequence of orders; resuming at epoch 1 too.
    again = ShuffledBatches(images, labels, batch_size=10, seed=7)
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch(again)]), first_order)
    resumed = ShuffledBatches(images, labels, batch_size=10, seed=7, initial_epoch=1)
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch(resumed)]), second_order)
    other = ShuffledBatches(images, labels, batch_size=10, seed=8)
    assert not np.array_equal(np.concatenate([y for _, y in epoch(other)]), first_order)
    with pytest.raises(IndexError):
        batches[10]
    # Without labels: (images,); repeat: the index runs on into later epochs.
    endless = ShuffledBatches(images, batch_size=10, seed=7, repeat=True)
    assert endless.num_batches is None
    assert len(endless[0]) == 1
    np.testing.assert_array_equal(
        np.concatenate([endless[i][0][:, 0, 0, 0] for i in range(10, 20)]), second_order
    )


def test_batch_size_is_checked():
    with pytest.raises(ValueError, match="batch_size=201.*num_examples=200"):
        ShuffledBatches(np.zeros((200, 2, 2, 3), np.uint8), batch_size=201)
    with pytest.raises(ValueError, match="batch_size=0"):
        ShuffledBatches(np.zeros((200, 2, 2, 3), np.uint8), batch_size=0)
    with pytest.raises(ValueError, match=r"labels.shape=\(3,\)"):
        ShuffledBatches(np.zeros((4, 2, 2, 3), np.uint8), np.zeros(3), batch_size=2)
