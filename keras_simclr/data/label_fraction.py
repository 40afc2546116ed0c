"""Balanced labelled subsets (SimCLR's 1% and 10% semi-supervised splits)."""

import dataclasses
import numbers

import numpy as np
import tensorflow as tf


def labeled_subset(labels, fraction, seed=0, num_classes=None):
    """Indices of a per-class balanced subset holding `fraction` of each class.

    Each class with `n` examples keeps `round(fraction * n)` of them (halves
    round up; at least one), drawn without replacement with
    `numpy.random.default_rng(seed)`, classes in increasing order: the same
    labels and seed give the same subset on every machine, another seed
    another subset.

    Args:
        labels: 1-D int array of class indices, one per example.
        fraction: in (0, 1], e.g. `0.01` or `0.1`.
        seed: the random seed (an int).
        num_classes: if given, labels must lie in `[0, num_classes)`.

    Returns:
        sorted int64 indices into `labels`.

    Raises:
        ValueError: `fraction` outside (0, 1], or labels that are not a 1-D
            int array of valid class indices.

    Example:

    ```python
    one_percent = labeled_subset(train_labels, 0.01, seed=0)
    ```
    """
    if (
        not isinstance(fraction, numbers.Real)
        or isinstance(fraction, bool)
        or not 0.0 < fraction <= 1.0
    ):
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(
            "labels must be a 1-D int array. "
            f"Received: labels.shape={labels.shape}, dtype={labels.dtype}"
        )
    too_large = num_classes is not None and labels.size and labels.max() >= num_classes
    if labels.size and (labels.min() < 0 or too_large):
        upper = num_classes if num_classes is not None else "num_classes"
        raise ValueError(
            f"labels must lie in [0, {upper}). "
            f"Received: labels in [{labels.min()}, {labels.max()}], num_classes={num_classes}"
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        # Half-up rounding, robust to 0.1 * 25 = 2.5000000000000004 and the like.
        count = int(np.floor(fraction * len(members) + 0.5 + 1e-9))
        count = min(max(1, count), len(members))
        chosen.append(rng.choice(members, size=count, replace=False))
    if not chosen:
        return np.zeros((0,), np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def select_examples(info, indices):
    """The examples of a `DatasetInfo` at `indices`, in dataset order.

    Reads the whole dataset on each pass and keeps the chosen elements; on
    a cached `DatasetInfo` that pass reads memory only.

    Args:
        info: a `DatasetInfo`.
        indices: int indices in `[0, info.num_examples)`, without repeats.

    Returns:
        a `DatasetInfo`.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(
            f"indices must be a 1-D int array. Received: indices.shape={indices.shape}, "
            f"dtype={indices.dtype}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= info.num_examples):
        raise ValueError(
            f"indices must lie in [0, {info.num_examples}). "
            f"Received: indices in [{indices.min()}, {indices.max()}]"
        )
    keep = np.zeros(info.num_examples, bool)
    keep[indices] = True
    if keep.sum() != indices.size:
        raise ValueError("indices must not repeat. Received: repeated indices")
    mask = tf.constant(keep)
    dataset = (
        info.dataset.enumerate()
        .filter(lambda i, example: mask[i])
        .map(lambda i, example: example)
    )
    return dataclasses.replace(
        info,
        dataset=dataset,
        num_examples=int(indices.size),
        labels=None if info.labels is None else info.labels[keep],
    )


def dataset_labels(info):
    """Every label of a `DatasetInfo`, in dataset order, as an int32 array.

    Uses `info.labels` when known; otherwise reads the dataset once (which
    decodes the images of an uncached folder or tfds dataset: call it on a
    cached `DatasetInfo` so that this pass fills the cache).
    """
    if info.labels is not None:
        return info.labels
    batches = [
        labels.numpy()
        for labels in info.dataset.map(lambda image, label: label).batch(8192)
    ]
    labels = np.concatenate(batches) if batches else np.zeros((0,), np.int32)
    if labels.shape != (info.num_examples,):
        raise ValueError(
            f"The dataset holds {labels.shape[0]} examples, not the "
            f"num_examples={info.num_examples} it claims."
        )
    return labels.astype(np.int32)


def subset_dataset(info, fraction, seed=0):
    """A per-class balanced `fraction` of a `DatasetInfo`'s examples.

    The subset is `labeled_subset(labels, fraction, seed)` applied to the
    dataset (see there for the counts). For the semi-supervised evaluation
    of SimCLR, e.g. fine-tuning on 1% or 10% of the ImageNet labels.

    Args:
        info: a `DatasetInfo` (cache it first if its images are decoded from
            files: finding the labels reads the dataset once).
        fraction: in (0, 1].
        seed: the random seed.

    Returns:
        a `DatasetInfo` whose `labels` are known.

    Example:

    ```python
    train = load_image_folder("/data/imagenet", "train", image_size=224)
    ten_percent = subset_dataset(train, 0.1, seed=0)
    ```
    """
    labels = dataset_labels(info)
    indices = labeled_subset(labels, fraction, seed, num_classes=info.num_classes or None)
    return select_examples(dataclasses.replace(info, labels=labels), indices)
