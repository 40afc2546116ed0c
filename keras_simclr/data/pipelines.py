"""Batched tf.data pipelines for pretraining and evaluation."""

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from keras_simclr.data.dataset_info import DEFAULT_CACHE_LIMIT_BYTES

# Shuffle buffer when the data is not in memory (decoded images of
# ImageNet size: about 1.5 GB at 224 x 224).
DEFAULT_SHUFFLE_BUFFER = 10_000


def _check_batch_size(batch_size):
    if (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    return int(batch_size)


def pretraining_dataset(
    info,
    batch_size,
    shuffle_buffer=None,
    seed=None,
    cache=True,
    repeat=False,
    cache_limit_bytes=DEFAULT_CACHE_LIMIT_BYTES,
):
    """Shuffled `(uint8 images, int32 labels)` batches for `model.fit`.

    The pipeline is: cache (decode once, when the decoded images fit in
    `cache_limit_bytes`), shuffle (a new order every epoch), repeat
    (optional), batch with `drop_remainder=True` (static batch shape, as
    TPUs and a compiled step need), prefetch. The labels ride along for an
    online probe; pretraining itself ignores them.

    To share one in-memory copy between this and `evaluation_dataset` (e.g.
    a kNN monitor on the training set), call `info.cache()` first and pass
    the result to both.

    Args:
        info: a `DatasetInfo`.
        batch_size: global batch size; at most `info.num_examples`.
        shuffle_buffer: shuffle buffer size; `None`: the whole dataset when it
            is in memory (a uniform shuffle), else `DEFAULT_SHUFFLE_BUFFER`.
            Capped at `info.num_examples`.
        seed: shuffle seed; the same seed gives the same sequence of epoch
            orders.
        cache: whether to cache the decoded images in memory.
        repeat: whether to repeat forever (then give `fit` a
            `steps_per_epoch`); batches then cross epoch boundaries.
        cache_limit_bytes: cache only when `info.nbytes` is at most this.

    Returns:
        a `tf.data.Dataset` of `(images (batch_size, H, W, 3) uint8,
        labels (batch_size,) int32)`, `info.num_examples // batch_size`
        batches per epoch.

    Raises:
        ValueError: `batch_size` is not positive or exceeds the number of
            examples.

    Example:

    ```python
    info = load_image_folder("/data/cifar10", "train")
    model.fit(pretraining_dataset(info, batch_size=512, seed=0), epochs=800)
    ```
    """
    batch_size = _check_batch_size(batch_size)
    if batch_size > info.num_examples:
        raise ValueError(
            f"batch_size={batch_size} is larger than the dataset's "
            f"{info.num_examples} examples, so no full batch can be made "
            f"(drop_remainder=True). Received: batch_size={batch_size}, "
            f"num_examples={info.num_examples}"
        )
    if cache:
        info = info.cache(cache_limit_bytes)
    if shuffle_buffer is None:
        shuffle_buffer = info.num_examples if info.in_memory else DEFAULT_SHUFFLE_BUFFER
    elif not isinstance(shuffle_buffer, numbers.Integral) or shuffle_buffer < 1:
        raise ValueError(
            f"shuffle_buffer must be a positive int. Received: shuffle_buffer={shuffle_buffer!r}"
        )
    dataset = info.dataset.shuffle(
        min(int(shuffle_buffer), info.num_examples), seed=seed, reshuffle_each_iteration=True
    )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(info, batch_size, cache=True, cache_limit_bytes=DEFAULT_CACHE_LIMIT_BYTES):
    """Unshuffled `(uint8 images, int32 labels)` batches, every example once.

    The last batch holds the remainder (it may be smaller). The order is
    the dataset's own, the same on every pass.

    Args:
        info: a `DatasetInfo`.
        batch_size: batch size (may exceed the number of examples).
        cache: whether to cache the decoded images in memory.
        cache_limit_bytes: cache only when `info.nbytes` is at most this.

    Returns:
        a `tf.data.Dataset`.

    Example:

    ```python
    monitor = KNNMonitor(evaluation_dataset(train, 512), evaluation_dataset(test, 512), 10)
    ```
    """
    batch_size = _check_batch_size(batch_size)
    if cache:
        info = info.cache(cache_limit_bytes)
    return info.dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def take_examples(info, count):
    """The first `count` examples of `info` (all of them if it has fewer).

    Image folders and tfds datasets store their examples in a fixed,
    class-mixed order, so the first examples are a small sample of every
    class; for a balanced subset use `subset_dataset`.

    Args:
        info: a `DatasetInfo`.
        count: how many examples to keep, at least 1.

    Returns:
        a `DatasetInfo`.
    """
    if not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"count must be a positive int. Received: count={count!r}")
    count = min(int(count), info.num_examples)
    return dataclasses.replace(
        info,
        dataset=info.dataset.take(count),
        num_examples=count,
        labels=None if info.labels is None else info.labels[:count],
    )


def dataset_arrays(info, batch_size=1024):
    """All images and labels of a `DatasetInfo` as NumPy arrays, in order.

    Returns:
        `(images (N, H, W, 3) uint8, labels (N,) int32)`.
    """
    images, labels = [], []
    for image_batch, label_batch in info.dataset.batch(batch_size):
        images.append(image_batch.numpy())
        labels.append(label_batch.numpy())
    if not images:
        height, width = info.image_size
        return np.zeros((0, height, width, 3), np.uint8), np.zeros((0,), np.int32)
    return np.concatenate(images), np.concatenate(labels)
