"""Weighted k-nearest-neighbour classification of encoder features.

Everything here is `keras.ops` and NumPy: it runs on every backend and
imports without TensorFlow. The features come from `features.py`
(`extract_features`: one row per image, also under a distribution).
"""

import numpy as np
from keras import ops

from keras_simclr.evaluation.features import extract_data_features
from keras_simclr.evaluation.labelled_data import check_labelled_arrays
from keras_simclr.models import input_checks


def unit_rows(x):
    """Rows of `x` divided by their L2 norm (at least 1e-12): `x / max(||x||, eps)`.

    The normalization of PyTorch's `F.normalize`, which lightly's and the
    InstDisc / MoCo kNN monitors use; the tests hold `weighted_knn_predict`
    to lightly's `knn_predict` with it. Not `utils.tensors.l2_normalize`
    (`x * rsqrt(max(||x||^2, eps))`, the losses' rule, which gives a zero
    gradient at 0): its results can differ in the last bits, and the
    kNN needs no gradient.

    Args:
        x: a `(N, F)` tensor.

    Returns:
        a tensor of the shape of `x`, each non-zero row of unit norm.

    Example:

    ```python
    unit_rows(keras.ops.convert_to_tensor([[3.0, 4.0]]))  # [[0.6, 0.8]]
    ```
    """
    return x / ops.maximum(ops.norm(x, axis=1, keepdims=True), 1e-12)


def weighted_knn_predict(
    train_features,
    train_labels,
    query_features,
    num_classes,
    k=200,
    temperature=0.1,
    batch_size=512,
    return_scores=False,
):
    """Weighted kNN classification: the InstDisc / SimCLR-benchmark protocol.

    Train and query features are L2-normalized. Each query's `k` most
    cosine-similar training features (`keras.ops.top_k`) vote for their class
    with weight `exp(similarity / temperature)`; a class's score is the sum of
    its votes and the prediction is the highest-scoring class (the lowest
    class index on an exact tie). Queries are processed `batch_size` at a
    time, so memory holds at most `batch_size x N` similarities (50k x 10k
    with the default 512 is 100 MB at a time).

    `k` larger than the number of training features is an error (use
    `evaluate_knn` or `KNNMonitor`, which cap `k` at the memory-bank size).

    Args:
        train_features: `(N, F)` memory bank.
        train_labels: `(N,)` integer labels in `[0, num_classes)`.
        query_features: `(Q, F)`.
        num_classes: number of classes.
        k: number of neighbours, `1 <= k <= N` (InstDisc: 200).
        temperature: weighting temperature, `> 0` (InstDisc: 0.07; the
            SimCLR/MoCo CIFAR kNN monitors: 0.1).
        batch_size: queries per chunk.
        return_scores: also return the class scores.

    Raises:
        ValueError: features that are not 2-D or of different widths;
            `train_labels` not one per training feature or outside
            `[0, num_classes)` (the error lists the bad values); `k`,
            `temperature` or `batch_size` out of range.

    Returns:
        int32 predictions `(Q,)`; with `return_scores=True`, the pair
        `(predictions, scores)` where `scores` is float32 `(Q, num_classes)`.
        For numerical range each query's scores are multiplied by
        `exp(-s_max / temperature)` (`s_max`: its highest similarity), which
        leaves the ranking of the classes unchanged.

    Example:

    ```python
    predictions = weighted_knn_predict(bank, bank_labels, queries, 10)
    accuracy = (predictions == query_labels).mean()
    ```

    References:
        - Wu et al., Unsupervised Feature Learning via Non-Parametric
          Instance Discrimination, CVPR 2018, eq. 7 (weighted kNN).
    """
    train_features = np.asarray(train_features, "float32")
    query_features = np.asarray(query_features, "float32")
    train_labels = np.asarray(train_labels)
    if train_labels.ndim == 2 and train_labels.shape[1] == 1:
        train_labels = train_labels[:, 0]
    if train_features.ndim != 2 or query_features.ndim != 2:
        raise ValueError(
            "train_features and query_features must be 2-D (examples, features). "
            f"Received: shapes {train_features.shape} and {query_features.shape}"
        )
    if train_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            "train_features and query_features must have the same width. "
            f"Received: {train_features.shape[1]} and {query_features.shape[1]}"
        )
    num_train = len(train_features)
    if train_labels.shape != (num_train,):
        raise ValueError(
            "train_labels must hold one label per training feature. Received: "
            f"train_labels of shape {train_labels.shape} for {num_train} features"
        )
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1. Received: num_classes={num_classes}")
    input_checks.check_labels(train_labels, num_classes, "train_labels")
    if not 1 <= int(k) <= num_train:
        raise ValueError(
            f"k must be between 1 and the number of training features "
            f"({num_train}). Received: k={k} with {num_train} training features"
        )
    k = int(k)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    batch_size = int(batch_size)

    bank_t = ops.transpose(unit_rows(ops.convert_to_tensor(train_features)))
    bank_labels = ops.convert_to_tensor(train_labels.astype("int32"))
    scores = np.zeros((len(query_features), num_classes), "float32")
    for start in range(0, len(query_features), batch_size):
        queries = unit_rows(ops.convert_to_tensor(query_features[start : start + batch_size]))
        count = int(queries.shape[0])
        similarity = ops.matmul(queries, bank_t)
        top, neighbours = ops.top_k(similarity, k)  # sorted, top[:, 0] is the max
        weights = ops.exp((top - top[:, :1]) / temperature)
        # One segment per (query, class): sum the weights of each class's votes.
        segments = (
            ops.take(bank_labels, neighbours)
            + num_classes * ops.arange(count, dtype="int32")[:, None]
        )
        chunk = ops.segment_sum(
            ops.reshape(weights, (-1,)),
            ops.reshape(segments, (-1,)),
            num_segments=count * num_classes,
        )
        scores[start : start + count] = ops.convert_to_numpy(
            ops.reshape(chunk, (count, num_classes))
        )
    predictions = np.argmax(scores, axis=1).astype("int32")
    if return_scores:
        return predictions, scores
    return predictions


def knn_accuracy(
    train_features,
    train_labels,
    query_features,
    query_labels,
    num_classes,
    k=200,
    temperature=0.1,
    batch_size=512,
):
    """Top-1 accuracy of `weighted_knn_predict` on labelled queries.

    Args:
        train_features, train_labels, query_features, num_classes, k,
        temperature, batch_size: as in `weighted_knn_predict`.
        query_labels: `(Q,)` integer labels of the queries.

    Returns:
        a Python float in [0, 1].

    Raises:
        ValueError: as `weighted_knn_predict`, and `query_labels` not one
            per query or outside `[0, num_classes)`.

    Example:

    ```python
    accuracy = knn_accuracy(bank, bank_labels, queries, query_labels, 10)
    ```
    """
    query_labels = np.asarray(query_labels).reshape(-1)
    if len(query_labels) != len(query_features):
        raise ValueError(
            "query_labels must hold one label per query. Received: "
            f"{len(query_labels)} labels for {len(query_features)} queries"
        )
    input_checks.check_labels(query_labels, int(num_classes), "query_labels")
    predictions = weighted_knn_predict(
        train_features,
        train_labels,
        query_features,
        num_classes,
        k=k,
        temperature=temperature,
        batch_size=batch_size,
    )
    return float(np.mean(predictions == query_labels))


def evaluate_knn(
    model_or_encoder,
    train_data,
    test_data,
    num_classes,
    k=200,
    temperature=0.1,
    batch_size=256,
):
    """Extracts features of both sets and returns weighted kNN top-1 accuracy.

    Unlike `weighted_knn_predict`, `k` is capped at the memory-bank size
    (`min(k, N)`), so a small training set still gives a number.

    Args:
        model_or_encoder: the encoder, or a model with `.encoder`.
        train_data: the labelled memory bank: `(images, labels)` arrays or a
            `tf.data.Dataset` of `(images, labels)` batches; uint8 images or
            floats in [0, 1].
        test_data: the labelled queries, in the same forms.
        num_classes, k, temperature: as in `weighted_knn_predict`.
        batch_size: batch size of feature extraction for arrays.

    Returns:
        a Python float in [0, 1].

    Raises:
        ValueError: float images outside [0, 1] (as `extract_features`);
            labels outside `[0, num_classes)`, naming the bad values (arrays
            are checked before any feature is extracted); data without
            labels.

    Example:

    ```python
    accuracy = evaluate_knn(model, (x_train, y_train), (x_test, y_test), 10)
    ```
    """
    num_classes = int(num_classes)
    check_labelled_arrays(train_data, num_classes, "train_data")
    check_labelled_arrays(test_data, num_classes, "test_data")
    train = extract_data_features(model_or_encoder, train_data, batch_size, "train_data images")
    test = extract_data_features(model_or_encoder, test_data, batch_size, "test_data images")
    if not (isinstance(train, tuple) and isinstance(test, tuple)):
        raise ValueError(
            "evaluate_knn needs labelled data: (images, labels) arrays or a "
            "dataset of (images, labels) batches. Received: images without labels"
        )
    (train_features, train_labels), (test_features, test_labels) = train, test
    # Labels of datasets are known only now.
    input_checks.check_labels(train_labels, num_classes, "train_data labels")
    input_checks.check_labels(test_labels, num_classes, "test_data labels")
    return knn_accuracy(
        train_features,
        train_labels,
        test_features,
        test_labels,
        num_classes,
        k=min(int(k), len(train_features)),
        temperature=temperature,
    )
