"""JAX multi-process data parallelism: each process feeds its part of every global batch."""

import keras


def process_part(batches, index, count):
    """This process's part of every global batch: rows `[index*b, (index+1)*b)`, `b = B / count`.

    For JAX multi-process data parallelism, where each process feeds its own
    slice of the global batch (`DataParallel(auto_shard_dataset=False)`).
    Every process must see the same global batches (the same data, seed
    and order), as `ShuffledBatches` and a seeded tf.data pipeline give.

    Args:
        batches: a `keras.utils.PyDataset` yielding `(images, labels)` or
            `(images,)` global batches (its `epoch` attribute, if any, stays
            reachable and settable through the result), or a batched
            `tf.data.Dataset`.
        index: this process's index.
        count: the number of processes; must divide the batch size.

    Returns:
        the same kind of object, yielding `B / count` rows per batch.
    """
    if count == 1:
        return batches
    if hasattr(batches, "element_spec"):  # tf.data
        import tensorflow as tf

        def part(*tensors):
            rows = tf.shape(tensors[0])[0] // count
            return tuple(t[index * rows : (index + 1) * rows] for t in tensors)

        return batches.map(part)
    return _ProcessBatches(batches, index, count)


class _ProcessBatches(keras.utils.PyDataset):
    def __init__(self, batches, index, count):
        super().__init__()
        self._batches = batches
        self._index = index
        self._count = count

    @property
    def epoch(self):
        return self._batches.epoch

    @epoch.setter
    def epoch(self, value):
        self._batches.epoch = value

    @property
    def num_batches(self):
        return self._batches.num_batches

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, i):
        batch = self._batches[i]
        if not isinstance(batch, tuple):
            batch = (batch,)
        rows = len(batch[0]) // self._count
        part = tuple(t[self._index * rows : (self._index + 1) * rows] for t in batch)
        return part if len(part) > 1 else part[0]

    def on_epoch_begin(self):
        self._batches.on_epoch_begin()

    def on_epoch_end(self):
        self._batches.on_epoch_end()
