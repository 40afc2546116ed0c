"""Weighted k-nearest-neighbour evaluation of encoder features."""

import numpy as np


def _batches(data, batch_size):
    """Yields `(images, labels)` NumPy batches from arrays or a tf.data dataset."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        images, labels = data
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    iterator = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else data
    for images, labels in iterator:
        yield images, labels


def extract_features(encoder, data, batch_size=512):
    """Runs `encoder` in inference mode over `data`.

    Args:
        encoder: a Keras model mapping float images in [0, 1] to features.
        data: `(images, labels)` arrays or an iterable / `tf.data.Dataset` of
            `(images, labels)` batches; uint8 images are scaled to [0, 1].
        batch_size: batch size for arrays.

    Returns:
        `(features, labels)`: float32 `(N, F)` and int `(N,)` arrays.
    """
    features, labels = [], []
    for images, batch_labels in _batches(data, batch_size):
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype("float32") / 255.0
        features.append(np.asarray(encoder.predict_on_batch(images), "float32"))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(features), np.concatenate(labels)


def weighted_knn_predict(
    train_features,
    train_labels,
    query_features,
    num_classes,
    k=200,
    temperature=0.1,
    batch_size=1024,
):
    """Weighted kNN class scores: the InstDisc/SimCLR-benchmark protocol.

    Features are L2-normalized; each query's `k` most cosine-similar
    training features vote for their class with weight
    `exp(similarity / temperature)`. Queries are processed `batch_size` at a
    time, so 50k x 10k never holds more than `batch_size` x 50k
    similarities.

    Args:
        train_features: (N, F) memory bank.
        train_labels: (N,) int labels of the memory bank.
        query_features: (Q, F).
        num_classes: number of classes.
        k: neighbours; at most N.
        temperature: weighting temperature, > 0.
        batch_size: queries per chunk.

    Returns:
        (Q, num_classes) float32 class scores; `argmax` is the prediction.

    Example:

    ```python
    scores = weighted_knn_predict(bank, bank_labels, queries, 10)
    accuracy = (scores.argmax(-1) == query_labels).mean()
    ```

    References:
        - Wu et al., Unsupervised Feature Learning via Non-Parametric
          Instance Discrimination, CVPR 2018 (weighted kNN, k=200, T=0.07).
    """
    train_features = np.asarray(train_features, "float32")
    query_features = np.asarray(query_features, "float32")
    train_labels = np.asarray(train_labels).astype(np.int64)
    if k < 1 or k > len(train_features):
        raise ValueError(
            f"k must be between 1 and the {len(train_features)} training "
            f"features. Received: k={k}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")

    def normalize(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    bank = normalize(train_features)
    scores = np.zeros((len(query_features), num_classes), "float32")
    for start in range(0, len(query_features), batch_size):
        queries = normalize(query_features[start : start + batch_size])
        similarity = queries @ bank.T
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(similarity, neighbours, axis=1)
        weights = np.exp((top - 1.0) / temperature)  # shifted: exp never overflows
        votes = np.zeros((len(queries), num_classes), "float64")
        rows = np.repeat(np.arange(len(queries)), k)
        np.add.at(votes, (rows, train_labels[neighbours].reshape(-1)), weights.reshape(-1))
        scores[start : start + len(queries)] = votes
    return scores


def knn_accuracy(
    train_features, train_labels, query_features, query_labels, num_classes, k=200, temperature=0.1
):
    """Top-1 accuracy of `weighted_knn_predict` on labelled queries."""
    scores = weighted_knn_predict(
        train_features, train_labels, query_features, num_classes, k, temperature
    )
    return float(np.mean(scores.argmax(axis=1) == np.asarray(query_labels)))


def evaluate_knn(encoder, train_data, test_data, num_classes, k=200, temperature=0.1):
    """Extracts features of both sets with `encoder` and returns kNN accuracy.

    `k` is capped at the memory-bank size.
    """
    train_features, train_labels = extract_features(encoder, train_data)
    test_features, test_labels = extract_features(encoder, test_data)
    return knn_accuracy(
        train_features,
        train_labels,
        test_features,
        test_labels,
        num_classes,
        k=min(k, len(train_features)),
        temperature=temperature,
    )
