"""Labelled images from in-memory arrays."""

import numpy as np
import tensorflow as tf

from keras_simclr.data.dataset_info import DatasetInfo


def _images_to_uint8(images):
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_ or not (
        np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    ):
        raise ValueError(
            "images must be uint8 (0-255) or floats in [0, 1]. "
            f"Received: images.dtype={images.dtype}"
        )
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    if np.issubdtype(images.dtype, np.integer):
        if low < 0 or high > 255:
            raise ValueError(
                "Integer images must lie in [0, 255]. "
                f"Received: images.dtype={images.dtype} with values in [{low}, {high}]"
            )
        return images.astype(np.uint8)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
        raise ValueError(
            "Float images must lie in [0, 1] (pass uint8 for 0-255 pixels). "
            f"Received: images.dtype={images.dtype} with values in [{low}, {high}]"
        )
    return np.round(images * 255.0).astype(np.uint8)


def load_arrays(images, labels=None, class_names=None):
    """Wraps in-memory images (and labels) as a `DatasetInfo`.

    The arrays are already decoded and in memory, so the result is marked
    `in_memory` and the pipelines do not cache it again.

    Args:
        images: `(N, H, W, 3)` array, uint8 in [0, 255] (other integer types
            in that range are accepted) or floats in [0, 1] (scaled and
            rounded to uint8).
        labels: int `(N,)` array of class indices >= 0; `None`: unlabelled
            (labels all 0 and `num_classes=0`).
        class_names: optional names, one per class; default `"0"`, `"1"`, ...

    Returns:
        a `DatasetInfo` of `(uint8 (H, W, 3) image, int32 label)`.

    Raises:
        ValueError: a shape, dtype or value range that is not the above.

    Example:

    ```python
    (x, y), _ = keras.datasets.cifar10.load_data()
    train = load_arrays(x, y[:, 0])
    ```
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(
            "images must be a non-empty (N, height, width, 3) array. "
            f"Received: images.shape={images.shape}, dtype={images.dtype}"
        )
    images = _images_to_uint8(images)
    num_examples = images.shape[0]
    if labels is None:
        labels = np.zeros(num_examples, np.int32)
        num_classes = 0
        if class_names:
            raise ValueError(
                f"class_names needs labels. Received: labels=None, class_names={class_names}"
            )
        class_names = []
    else:
        labels = np.asarray(labels)
        if labels.shape != (num_examples,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be an integer array of shape ({num_examples},), one per "
                f"image. Received: labels.shape={labels.shape}, dtype={labels.dtype}"
            )
        if labels.min() < 0:
            raise ValueError(
                f"labels must be class indices >= 0. Received: min(labels)={labels.min()}"
            )
        labels = labels.astype(np.int32)
        if class_names is None:
            class_names = [str(i) for i in range(int(labels.max()) + 1)]
        elif len(class_names) <= labels.max():
            raise ValueError(
                f"There are {len(class_names)} class_names but labels go up to "
                f"{labels.max()}. Received: class_names={list(class_names)}"
            )
        num_classes = len(class_names)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return DatasetInfo(
        dataset=dataset,
        num_examples=num_examples,
        num_classes=num_classes,
        class_names=class_names,
        image_size=images.shape[1:3],
        labels=labels,
        in_memory=True,
    )
