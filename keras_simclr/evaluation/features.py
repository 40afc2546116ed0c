"""Encoder features of images: batch iteration and feature extraction.

Everything here is NumPy and the model's own forward pass: it runs on every
backend and imports without TensorFlow. TensorFlow is touched only when the
caller passes a `tf.data.Dataset` (it is then already imported).

Features come from `forward.predict_batch`, not `predict_on_batch`: one row
per image also for an encoder built under a `tf.distribute` strategy or a
JAX distribution, equal to what the single-device encoder with the same
weights gives.
"""

import numpy as np

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.evaluation.forward import predict_batch
from keras_simclr.models.input_checks import is_tf_dataset
from keras_simclr.models.resolve_encoder import resolve_encoder


def _is_image_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and len(x.shape) == 4


def split_batch(batch):
    """`(images, labels)`, `(images,)` or `images` -> `(images, labels or None)`.

    A third element (sample weights) is ignored. Works on batches and on a
    dataset's `element_spec` alike.

    Raises:
        ValueError: a dict batch, naming its keys.

    Example:

    ```python
    images, labels = split_batch((x, y))
    images, labels = split_batch(x)  # labels is None
    ```
    """
    if isinstance(batch, dict):
        raise ValueError(
            "Batches must be `(images, labels)` tuples or image arrays. "
            f"Received: a dict with keys {sorted(batch)}"
        )
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        if len(batch) >= 2:
            # (images, labels[, sample_weights]): the weights are ignored.
            return batch[0], batch[1]
    return batch, None


def iterate_batches(data, batch_size):
    """Yields `(images, labels or None)` NumPy batches.

    Args:
        data: an image array `(N, H, W, 3)`, a pair `(images, labels)` of
            arrays, a `tf.data.Dataset` of `(images, labels)` or image
            batches (an unbatched dataset of single images is batched here),
            or any iterable of such batches.
        batch_size: batch size for arrays and unbatched datasets.

    Raises:
        ValueError: images and labels of different lengths; data of none of
            these forms.

    Example:

    ```python
    for images, labels in iterate_batches((x_test, y_test), 256):
        ...
    ```
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
    if is_tf_dataset(data):
        spec, _ = split_batch(data.element_spec)
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
        images, labels = split_batch(element)
        yield np.asarray(images), None if labels is None else np.asarray(labels)


def _to_unit_float(images, what):
    """uint8 -> float32 / 255 (any integer type); floats in [0, 1] as they are.

    NumPy, as the batches are: `augment.image_utils.to_unit_float` is the
    same rule on tensors.
    """
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
    return extract_data_features(model_or_encoder, images_or_dataset, batch_size)


def extract_data_features(model_or_encoder, data, batch_size, what="images"):
    """`extract_features` of a named data set: its errors call the images `what`.

    The evaluations call it with e.g. `what="train_data images"`, so an
    image out of range names the argument it came in.

    Args:
        model_or_encoder, batch_size: as in `extract_features`.
        data: `images_or_dataset` of `extract_features`.
        what: how errors name the images.

    Returns and Raises: as `extract_features`.

    Example:

    ```python
    features, labels = extract_data_features(model, test_data, 256, "test_data images")
    ```
    """
    encoder = resolve_encoder(model_or_encoder)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    features, labels, has_labels = [], [], None
    for images, batch_labels in iterate_batches(data, int(batch_size)):
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
