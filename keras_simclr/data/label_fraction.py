"""Balanced labelled subsets (SimCLR's 1% and 10% semi-supervised splits)."""

import dataclasses

import numpy as np
import tensorflow as tf


def labeled_subset(labels, fraction, seed=0):
    """Indices of a per-class balanced subset holding `fraction` of each class.

    Each class keeps `round(fraction * count)` of its examples (at least
    one), drawn without replacement by `numpy.random.default_rng(seed)`: the
    same seed gives the same subset.

    Args:
        labels: int array of class indices, one per example.
        fraction: in (0, 1], e.g. 0.01 or 0.1.
        seed: random seed.

    Returns:
        sorted int64 indices into `labels`.

    Example:

    ```python
    ten_percent = labeled_subset(train_labels, 0.1, seed=0)
    ```
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"fraction must be in (0, 1]. Received: fraction={fraction}"
        )
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def subset(data, indices):
    """The examples of an `ImageDataset` at `indices` (in dataset order)."""
    keep = np.zeros(data.num_examples, bool)
    keep[np.asarray(indices)] = True
    keep = tf.constant(keep)
    dataset = (
        data.dataset.enumerate()
        .filter(lambda i, example: keep[i])
        .map(lambda i, example: example)
    )
    return dataclasses.replace(data, dataset=dataset, num_examples=int(keep.numpy().sum()))
