import numpy as np
import pytest

from keras_simclr.models.full_batches import FullBatches
from keras_simclr.models.full_batches import split_for_validation


def _epoch(batches):
    batches.on_epoch_begin()
    return [batches[i] for i in range(len(batches))]


def test_only_full_batches_of_a_new_permutation_every_epoch():
    x = np.arange(10)
    batches = FullBatches((x, -x), y=x * 10, batch_size=4)
    assert len(batches) == 2
    np.random.seed(0)
    epochs = [_epoch(batches) for _ in range(3)]
    for epoch in epochs:
        # (x, y): x is the pair of views, each batch full, rows kept together.
        assert all(len(b) == 2 and b[0][0].shape == (4,) for b in epoch)
        for (view_a, view_b), y in epoch:
            np.testing.assert_array_equal(view_b, -view_a)
            np.testing.assert_array_equal(y, view_a * 10)
        chosen = np.concatenate([b[0][0] for b in epoch])
        assert len(set(chosen.tolist())) == 8  # no example twice in an epoch
    orders = [np.concatenate([b[0][0] for b in epoch]).tolist() for epoch in epochs]
    assert orders[0] != orders[1] != orders[2]
    # The two left out differ between epochs: every example gets its turn.
    assert set().union(*[set(order) for order in orders]) == set(range(10))
    with pytest.raises(IndexError, match="index=2"):
        batches[2]


def test_shuffle_false_and_batch():
    x = np.arange(11)
    in_order = _epoch(FullBatches(x, batch_size=3, shuffle=False))
    assert [b[0].tolist() for b in in_order] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    np.random.seed(1)
    within = _epoch(FullBatches(x, batch_size=3, shuffle="batch"))
    assert [sorted(b[0].tolist()) for b in within] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    # (x, None, sample_weight) keeps its place for the weights.
    weighted = FullBatches(x, sample_weight=x / 10, batch_size=3, shuffle=False)[0]
    assert weighted[1] is None
    np.testing.assert_allclose(weighted[2], [0.0, 0.1, 0.2])


def test_batch_size_is_checked_and_the_validation_split_is_keras_s():
    with pytest.raises(ValueError, match="batch_size=5, 4 examples"):
        FullBatches(np.zeros(4), batch_size=5)
    x, y = np.arange(10), np.arange(10) * 2
    (train_x, train_y, weights), (val_x, val_y, _) = split_for_validation((x, y, None), 0.25)
    # floor(10 * 0.75) = 7 examples train, the last 3 validate (as Keras).
    assert train_x.tolist() == list(range(7)) and val_x.tolist() == [7, 8, 9]
    assert val_y.tolist() == [14, 16, 18] and weights is None
    with pytest.raises(ValueError, match="validation_split=0.95"):
        split_for_validation((x, None, None), 0.95)
