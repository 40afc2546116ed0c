"""`ArrayImageDataset`: labelled images held as NumPy arrays, without TensorFlow.

The NumPy implementation of `ImageDataset`, made for the JAX backend: images
decoded once into one uint8 `(N, H, W, 3)` array in host memory
(`load_image_folder(..., in_memory=True)`, `load_arrays`, or any
`ImageDataset.in_memory()`); `training_batches` are `ShuffledBatches`, a
`keras.utils.PyDataset`, and the model augments each uint8 batch inside its
compiled step.

This module imports Keras but not TensorFlow.
"""

import dataclasses

import numpy as np

from keras_simclr.data.image_dataset import ImageDataset
from keras_simclr.data.image_dataset import check_count
from keras_simclr.data.image_dataset import selection_mask
from keras_simclr.data.ordered_batches import OrderedBatches
from keras_simclr.data.shuffled_batches import ShuffledBatches


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayImageDataset(ImageDataset):
    """Labelled images in host memory: uint8 `(N, H, W, 3)` and int32 `(N,)`.

    Args:
        images: uint8 array `(N, H, W, 3)`.
        labels: int `(N,)` array of class indices (stored as int32).
        class_names: class names in label order (empty for unlabelled data,
            whose labels are all 0).

    Example:

    ```python
    train = load_image_folder("/data/cifar10", "train", in_memory=True)
    model.fit(train.training_batches(512, seed=0), epochs=800, shuffle=False)
    ```
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list

    def __post_init__(self):
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "images must be a uint8 (N, height, width, 3) array. "
                f"Received: images.shape={images.shape}, dtype={images.dtype}"
            )
        labels = np.asarray(self.labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be an integer array of shape ({len(images)},). "
                f"Received: labels.shape={labels.shape}, dtype={labels.dtype}"
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
        object.__setattr__(self, "class_names", [str(c) for c in self.class_names])

    @property
    def num_examples(self):
        return int(self.images.shape[0])

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_size(self):
        return tuple(int(v) for v in self.images.shape[1:3])

    @property
    def nbytes(self):
        return int(self.images.nbytes)

    def take(self, count):
        count = check_count(count, self.num_examples)
        return dataclasses.replace(self, images=self.images[:count], labels=self.labels[:count])

    def cache(self):
        """This dataset: its images are in memory already."""
        return self

    def in_memory(self):
        """This dataset."""
        return self

    def arrays(self):
        return self.images, self.labels

    def read_labels(self):
        return self.labels

    def select(self, indices):
        keep = selection_mask(indices, self.num_examples)
        return dataclasses.replace(self, images=self.images[keep], labels=self.labels[keep])

    def training_batches(self, batch_size, seed=None, **kwargs):
        """`ShuffledBatches(images, labels, batch_size, seed=seed, **kwargs)`.

        Epoch `e`'s order depends only on `(seed, e)` (the PyDataset's
        `epoch` attribute, advanced by `fit`); `kwargs` (`initial_epoch`,
        `repeat`, `workers`, ...) go to `ShuffledBatches`.
        """
        return ShuffledBatches(self.images, self.labels, batch_size, seed=seed, **kwargs)

    def evaluation_batches(self, batch_size):
        """`OrderedBatches(images, labels, batch_size)`: NumPy batches, in order."""
        return OrderedBatches(self.images, self.labels, batch_size)


def images_to_uint8(images):
    """uint8 images as they are; other integers in [0, 255] cast; floats in
    [0, 1] scaled by 255 and rounded.

    Raises:
        ValueError: another dtype, or values outside those ranges.
    """
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
    """Wraps in-memory images (and labels) as an `ImageDataset` (NumPy).

    Args:
        images: `(N, H, W, 3)` array, uint8 in [0, 255] (other integer types
            in that range are accepted) or floats in [0, 1] (scaled and
            rounded to uint8).
        labels: int `(N,)` array of class indices >= 0; `None`: unlabelled
            (labels all 0 and `num_classes=0`).
        class_names: optional names, one per class; default `"0"`, `"1"`, ...

    Returns:
        an `ArrayImageDataset`. (`TFImageDataset.from_arrays` takes the same
        arguments and gives the `tf.data` implementation.)

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
    images = images_to_uint8(images)
    num_examples = images.shape[0]
    if labels is None:
        if class_names:
            raise ValueError(
                f"class_names needs labels. Received: labels=None, class_names={class_names}"
            )
        return ArrayImageDataset(images, np.zeros(num_examples, np.int32), [])
    labels = np.asarray(labels)
    if labels.shape != (num_examples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an integer array of shape ({num_examples},), one per "
            f"image. Received: labels.shape={labels.shape}, dtype={labels.dtype}"
        )
    if labels.min() < 0:
        raise ValueError(f"labels must be class indices >= 0. Received: min(labels)={labels.min()}")
    labels = labels.astype(np.int32)
    if class_names is None:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    elif len(class_names) <= labels.max():
        raise ValueError(
            f"There are {len(class_names)} class_names but labels go up to "
            f"{labels.max()}. Received: class_names={list(class_names)}"
        )
    return ArrayImageDataset(images, labels, class_names)
