"""Full batches of in-memory arrays for `ContrastiveModel.fit` (not public API).

On JAX every new batch shape compiles the training step again: Keras's own
batching of NumPy arrays ends each epoch with a smaller batch, which costs a
second XLA compile of the whole step (20-34 s on CPU for a ResNet-18 at
batch 128). `FullBatches` batches arrays as Keras does but yields only full
batches, as `tf.data`'s `batch(drop_remainder=True)` does.
"""

import math

import keras
import numpy as np


def split_for_validation(arrays, validation_split):
    """`(train, validation)`: the last `validation_split` of the examples.

    Keras's own `validation_split` rule for arrays (the split is taken
    before any shuffling); `arrays` is `(x, y, sample_weight)`, each an
    array, a structure of arrays or None.
    """
    leaves = [a for a in keras.tree.flatten(arrays) if a is not None]
    count = int(leaves[0].shape[0])
    split_at = int(math.floor(count * (1.0 - validation_split)))
    if split_at == 0 or split_at == count:
        raise ValueError(
            f"Training data contains {count} samples, which is not sufficient "
            "to split it into a validation and training set as specified by "
            f"`validation_split={validation_split}`. Either provide more data, "
            "or a different value for the `validation_split` argument."
        )

    def part(start, stop):
        return keras.tree.map_structure(
            lambda a: None if a is None else a[start:stop],
            arrays,
            none_is_leaf=True,
        )

    return part(0, split_at), part(split_at, count)


class FullBatches(keras.utils.PyDataset):
    """`fit` data from arrays, in full batches only: the last partial one is
    dropped.

    Every epoch draws a new order as Keras does for arrays (`shuffle=True`: a
    `np.random.permutation` of all examples, so `keras.utils.set_random_seed`
    fixes it; `"batch"`: shuffled within each batch; `False`: in order) and
    cuts it into `len(x) // batch_size` batches: the `len(x) % batch_size`
    examples left out differ from epoch to epoch.

    Args:
        x: an array or a structure of arrays (e.g. `(view_a, view_b)`).
        y: labels or None.
        sample_weight: weights or None.
        batch_size: examples per batch, at most `len(x)`.
        shuffle: `True`, `False` or `"batch"`, as `fit`'s `shuffle`.
    """

    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=True):
        super().__init__()
        # As fit's data: (x,), (x, y) or (x, y, sample_weight).
        data = (x, y, sample_weight)
        while len(data) > 1 and data[-1] is None:
            data = data[:-1]
        self.data = keras.tree.map_structure(
            lambda a: None if a is None else np.asarray(a), data, none_is_leaf=True
        )
        leaves = [a for a in keras.tree.flatten(self.data) if a is not None]
        self.num_examples = int(leaves[0].shape[0])
        self.batch_size = int(batch_size)
        if not 1 <= self.batch_size <= self.num_examples:
            raise ValueError(
                "FullBatches needs a batch size between 1 and the number of "
                f"examples. Received: batch_size={batch_size}, "
                f"{self.num_examples} examples"
            )
        self.shuffle = shuffle
        self._order = None

    def __len__(self):
        return self.num_examples // self.batch_size

    def on_epoch_begin(self):
        count = len(self) * self.batch_size
        if self.shuffle == "batch":
            order = np.arange(self.num_examples)
            for start in range(0, count, self.batch_size):
                stop = start + self.batch_size
                order[start:stop] = start + np.random.permutation(self.batch_size)
        elif self.shuffle:
            order = np.random.permutation(self.num_examples)
        else:
            order = np.arange(self.num_examples)
        self._order = order

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index out of range [0, {len(self)}). Received: index={index}")
        if self._order is None:
            self.on_epoch_begin()
        chosen = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return keras.tree.map_structure(
            lambda a: None if a is None else a[chosen], self.data, none_is_leaf=True
        )
