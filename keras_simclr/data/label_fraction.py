"""Balanced labelled subsets (SimCLR's 1% and 10% semi-supervised splits).

`ImageDataset.subset` applies `labeled_subset` to a dataset.
"""

import numbers

import numpy as np


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
