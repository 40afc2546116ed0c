"""Weighted k-nearest-neighbour evaluation of encoder features.

Everything here is `keras.ops` and NumPy: it runs on every backend and
imports without TensorFlow. TensorFlow is touched only when the caller passes
a `tf.data.Dataset` or the backend is TensorFlow (it is then already
imported).

Features come from `forward.predict_batch`, not `predict_on_batch`: one row
per image also for an encoder built under a `tf.distribute` strategy or a
JAX distribution, equal to what the single-device encoder with the same
weights gives.
"""

import keras
import numpy as np
from keras import ops

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.evaluation.forward import predict_batch
from keras_simclr.models import input_checks


def resolve_encoder(model_or_encoder, caller="extract_features"):
    """Returns the encoder of a `ContrastiveModel`-like object or the model itself.

    Anything with an `.encoder` attribute that is a `keras.Model` (e.g.
    `ContrastiveModel`) gives that encoder; a `keras.Model` is used as is.
    """
    encoder = getattr(model_or_encoder, "encoder", None)
    if isinstance(encoder, keras.Model):
        return encoder
    if isinstance(model_or_encoder, keras.Model):
        return model_or_encoder
    raise ValueError(
        f"{caller} takes an encoder `keras.Model` or a model with an "
        "`.encoder` attribute that is a `keras.Model` (e.g. ContrastiveModel). "
        f"Received: {type(model_or_encoder).__name__}"
    )


_is_tf_dataset = input_checks.is_tf_dataset


def _is_image_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and len(x.shape) == 4


def _split_element(element):
    """`(images, labels)`, `(images,)` or `images` -> `(images, labels or None)`."""
    if isinstance(element, dict):
        raise ValueError(
            "Batches must be `(images, labels)` tuples or image arrays. "
            f"Received: a dict with keys {sorted(element)}"
        )
    if isinstance(element, (tuple, list)):
        if len(element) == 1:
            return element[0], None
        if len(element) >= 2:
            # (images, labels[, sample_weights]): the weights are ignored.
            return element[0], element[1]
    return element, None


def iterate_batches(data, batch_size):
    """Yields `(images, labels or None)` NumPy batches.

    `data` is an image array `(N, H, W, 3)`, a pair `(images, labels)` of
    arrays, a `tf.data.Dataset` of `(images, labels)` or image batches (an
    unbatched dataset of single images is batched here), or any iterable of
    such batches.
    """
    if _is_image_array(data):
        for start in range(0, len(data), batch_size):
            yield np.asarray(data[start : start + batch_size]), None
        return
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and _is_image_array(data[0])
        and hasattr(data[1], "shape")
    ):
        images, labels = data
        if len(images) != len(labels):
            raise ValueError(
                "images and labels must have the same length. Received: "
                f"{len(images)} images and {len(labels)} labels"
            )
        for start in range(0, len(images), batch_size):
            yield (
                np.asarray(images[start : start + batch_size]),
                np.asarray(labels[start : start + batch_size]),
            )
        return
    if _is_tf_dataset(data):
        spec, _ = _split_element(data.element_spec)
        if spec.shape.rank == 3:  # single images: batch them here
            data = data.batch(batch_size)
        iterator = data.as_numpy_iterator()
    else:
        try:
            iterator = iter(data)
        except TypeError:
            raise ValueError(
                "Expected images `(N, H, W, 3)`, `(images, labels)` arrays, a "
                "tf.data.Dataset or an iterable of batches. Received: "
                f"{type(data).__name__}"
            ) from None
    for element in iterator:
        images, labels = _split_element(element)
        yield np.asarray(images), None if labels is None else np.asarray(labels)


def _to_unit_float(images, what):
    """uint8 -> float32 / 255 (any integer type); floats in [0, 1] as they are."""
    check_image_range(images, what)
    if np.issubdtype(images.dtype, np.integer):
        return images.astype("float32") / 255.0
    return images.astype("float32", copy=False)


def extract_features(model_or_encoder, images_or_dataset, batch_size=256):
    """Runs the encoder in inference mode and returns its features as NumPy.

    Args:
        model_or_encoder: an encoder `keras.Model` mapping float32 images in
            [0, 1], `(B, H, W, 3)`, to features `(B, F)`, or a model with an
            `.encoder` attribute (e.g. `ContrastiveModel`), whose encoder is
            used.
        images_or_dataset: images `(N, H, W, 3)`; or `(images, labels)`
            arrays; or a `tf.data.Dataset` (batched or not) / iterable of
            `(images, labels)` or image batches. uint8 images are scaled to
            [0, 1]; float images must be in [0, 1] already and are used as
            they are (never rescaled or clipped).
        batch_size: batch size for arrays and unbatched datasets.

    On a model built under a `tf.distribute` strategy (or called in a
    strategy's scope) the encoder runs on one device, outside the replica
    context: the single-device features, one row per image.

    Returns:
        `features`, float32 `(N, F)`, when the data has no labels;
        `(features, labels)`, with labels `(N,)`, when it has.

    Raises:
        ValueError: float images outside [0, 1] (or integer ones outside
            [0, 255]), naming their dtype and range; images that are not
            `(batch, H, W, C)`; an encoder output that is not `(batch, F)`;
            a mix of labelled and unlabelled batches; no images.

    Example:

    ```python
    features, labels = extract_features(model, (x_test, y_test))
    features = extract_features(model.encoder, x_test)
    ```
    """
    return _extract_features(model_or_encoder, images_or_dataset, batch_size)


def _extract_features(model_or_encoder, images_or_dataset, batch_size, what="images"):
    """`extract_features`, its errors naming the images `what`."""
    encoder = resolve_encoder(model_or_encoder)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    features, labels, has_labels = [], [], None
    for images, batch_labels in iterate_batches(images_or_dataset, int(batch_size)):
        if has_labels is None:
            has_labels = batch_labels is not None
        elif has_labels != (batch_labels is not None):
            raise ValueError(
                "Either every batch carries labels or none does. Received: a "
                "mix of (images, labels) and image-only batches"
            )
        if images.ndim != 4:
            raise ValueError(
                "Images must be a batch of shape (batch, height, width, channels). "
                f"Received: shape={images.shape}"
            )
        if len(images) == 0:
            continue
        # Not encoder.predict_on_batch: under a tf.distribute strategy it
        # returns one copy of the batch per replica (see forward.py).
        output = predict_batch(encoder, _to_unit_float(images, what)).astype("float32")
        if output.ndim != 2:
            raise ValueError(
                "The encoder must map images to features of shape (batch, F), "
                f"e.g. with global average pooling. Received: output shape {output.shape}"
            )
        features.append(output)
        if has_labels:
            batch_labels = np.asarray(batch_labels)
            if batch_labels.ndim == 2 and batch_labels.shape[1] == 1:
                batch_labels = batch_labels[:, 0]
            labels.append(batch_labels)
    if not features:
        raise ValueError("No images to extract features from. Received: empty data")
    features = np.concatenate(features)
    if has_labels:
        return features, np.concatenate(labels)
    return features


def check_labelled_arrays(data, num_classes, name):
    """Checks the images and labels of `(images, labels)` arrays now.

    Anything else (a dataset, an iterable) is left to the checks made as
    its batches are read.

    Raises:
        ValueError: as `check_image_range` and `check_labels`, naming
            `name`.
    """
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and input_checks.is_array(data[0])
        and input_checks.is_array(data[1])
    ):
        check_image_range(data[0], f"{name} images")
        input_checks.check_labels(data[1], num_classes, f"{name} labels")


def _l2_normalize(x):
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

    bank_t = ops.transpose(_l2_normalize(ops.convert_to_tensor(train_features)))
    bank_labels = ops.convert_to_tensor(train_labels.astype("int32"))
    scores = np.zeros((len(query_features), num_classes), "float32")
    for start in range(0, len(query_features), batch_size):
        queries = _l2_normalize(
            ops.convert_to_tensor(query_features[start : start + batch_size])
        )
        count = int(queries.shape[0])
        similarity = ops.matmul(queries, bank_t)
        top, neighbours = ops.top_k(similarity, k)  # sorted, top[:, 0] is the max
        weights = ops.exp((top - top[:, :1]) / temperature)
        # One segment per (query, class): sum the weights of each class's votes.
        segments = ops.take(bank_labels, neighbours) + num_classes * ops.arange(
            count, dtype="int32"
        )[:, None]
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
    train = _extract_features(
        model_or_encoder, train_data, batch_size, "train_data images"
    )
    test = _extract_features(model_or_encoder, test_data, batch_size, "test_data images")
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
