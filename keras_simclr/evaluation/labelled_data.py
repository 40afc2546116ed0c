"""The labelled data of the supervised evaluations, checked and made ready for `fit`.

`linear_evaluation`, `fine_tune`, `evaluate_knn` and `KNNMonitor` take their
training and test sets in the same forms: `(images, labels)` arrays or a
`tf.data.Dataset` of `(images, labels)` batches. This module checks them
(arrays before any work, datasets as they are read) and turns the training
set into the arguments of `Model.fit`.
"""

import collections
import math

import numpy as np

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.evaluation.features import extract_data_features
from keras_simclr.evaluation.features import split_batch
from keras_simclr.models import input_checks


def check_labelled_arrays(data, num_classes, name):
    """Checks the images and labels of `(images, labels)` arrays now.

    Anything else (a dataset, an iterable) is left to the checks made as
    its batches are read.

    Args:
        data: the data set.
        num_classes: labels must be in `[0, num_classes)`.
        name: the argument's name, e.g. `"train_data"`, for the errors.

    Raises:
        ValueError: as `check_image_range` and `check_labels`, naming
            `name`.

    Example:

    ```python
    check_labelled_arrays((x_train, y_train), 10, "train_data")
    ```
    """
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and input_checks.is_array(data[0])
        and input_checks.is_array(data[1])
    ):
        check_image_range(data[0], f"{name} images")
        input_checks.check_labels(data[1], num_classes, f"{name} labels")


def as_labelled_arrays(data, name):
    """`(images, labels)` as NumPy arrays (labels flat), or None for a dataset.

    Raises:
        ValueError: `data` is neither, naming `name` and the type received.
    """
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and hasattr(data[0], "shape")
        and hasattr(data[1], "shape")
    ):
        return np.asarray(data[0]), np.asarray(data[1]).reshape(-1)
    if input_checks.is_tf_dataset(data):
        return None
    raise ValueError(
        f"{name} must be (images, labels) arrays or a tf.data.Dataset of "
        f"(images, labels) batches. Received: {type(data).__name__}"
    )


def check_train_and_test_data(train_data, test_data, num_classes):
    """Checks the forms of both sets, and the values of arrays, before any work.

    Args:
        train_data, test_data: `(images, labels)` arrays or datasets of
            `(images, labels)` batches.
        num_classes: labels must be in `[0, num_classes)`.

    Returns:
        the training set as `(images, labels)` NumPy arrays, or None when it
        is a dataset.

    Raises:
        ValueError: a set of another form; array images or labels out of
            range (`check_labelled_arrays`).

    Example:

    ```python
    train_arrays = check_train_and_test_data(train_data, test_data, 10)
    ```
    """
    train_arrays = as_labelled_arrays(train_data, "train_data")
    as_labelled_arrays(test_data, "test_data")
    check_labelled_arrays(train_data, num_classes, "train_data")
    check_labelled_arrays(test_data, num_classes, "test_data")
    return train_arrays


def labelled_features(encoder, data, batch_size, num_classes, name):
    """Features and labels of the data set `name`, its images and labels checked.

    Returns:
        `(features, labels)`, NumPy.

    Raises:
        ValueError: images or labels out of range, naming `name`.
    """
    features, labels = extract_data_features(encoder, data, batch_size, f"{name} images")
    return features, input_checks.check_labels(labels, num_classes, f"{name} labels")


def _image_input(train_data):
    """Returns `(image_shape, dtype)` of the images of a dataset of batches."""
    spec, label_spec = split_batch(train_data.element_spec)
    if label_spec is None:
        raise ValueError(
            "train_data must yield (images, labels) batches. "
            f"Received: a dataset of {train_data.element_spec}"
        )
    return tuple(spec.shape[-3:]), spec.dtype.name


def _dataset_steps(dataset):
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    if cardinality == -1:  # INFINITE_CARDINALITY
        raise ValueError(
            "train_data is an infinite dataset (repeat()); linear_evaluation "
            "needs a finite epoch. Received: a dataset of infinite cardinality"
        )
    return sum(1 for _ in dataset)


FitInput = collections.namedtuple("FitInput", ["image_shape", "steps_per_epoch", "fit_args"])
FitInput.__doc__ = """What `fit` needs to train on labelled images.

Fields:
    image_shape: the shape of one image, `(H, W, C)`.
    steps_per_epoch: batches per epoch.
    fit_args: keyword arguments of `Model.fit` holding the data (`x`, and
        for arrays `y`, `batch_size`, `shuffle=True`).
"""


def image_fit_input(train_data, train_arrays, batch_size, num_classes, check_values=True):
    """The training images and labels as `fit` arguments, with the epoch's length.

    Arrays are shuffled by `fit` every epoch; a dataset is used in its own
    order (the caller shuffles it).

    Args:
        train_data: the training set as given.
        train_arrays: `check_train_and_test_data`'s result: `(images,
            labels)` arrays, or None for a dataset.
        batch_size: the batch size of arrays.
        num_classes: labels must be in `[0, num_classes)`.
        check_values: map a dataset through the image and label checks, run
            as `fit` reads it (inside `input_checks.raise_input_errors`);
            `False` when its values were read and checked already.

    Returns:
        a `FitInput`.

    Raises:
        ValueError: a dataset without labels, or an infinite one.

    Example:

    ```python
    train_arrays = check_train_and_test_data(train_data, test_data, 10)
    fit_input = image_fit_input(train_data, train_arrays, 256, 10)
    model.fit(epochs=10, **fit_input.fit_args)
    ```
    """
    if train_arrays is not None:
        images, labels = train_arrays
        return FitInput(
            tuple(images.shape[1:]),
            math.ceil(len(images) / batch_size),
            dict(x=images, y=labels, batch_size=batch_size, shuffle=True),
        )
    image_shape, _ = _image_input(train_data)
    steps_per_epoch = _dataset_steps(train_data)
    if check_values:
        train_data = input_checks.checked_images(
            train_data, "train_data images", num_classes, "train_data labels"
        )
    # Shuffled by the caller.
    return FitInput(image_shape, steps_per_epoch, dict(x=train_data, shuffle=False))
