"""`DatasetInfo`: a labelled image dataset and what is known about it."""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

# Decoded images up to this many bytes are cached in memory (decoded once).
DEFAULT_CACHE_LIMIT_BYTES = 8 * 1024**3

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetInfo:
    """A labelled image dataset: unbatched `(uint8 image, int32 label)` pairs.

    Returned by `load_tfds`, `load_image_folder` and `load_arrays`, and taken
    by `pretraining_dataset`, `evaluation_dataset` and `subset_dataset`. It is
    immutable: the methods and functions that change it return a new one.

    Args:
        dataset: `tf.data.Dataset` of `(image, label)`, image a uint8 tensor
            of shape `(H, W, 3)`, label an int32 scalar; unbatched.
        num_examples: number of elements of `dataset`.
        num_classes: number of classes (0 for unlabelled data, whose labels
            are all 0).
        class_names: class names in label order.
        image_size: `(H, W)` of every image.
        labels: optional int32 NumPy array of every label in dataset order,
            where it is known without reading the images (arrays).
        in_memory: whether the elements come from memory (arrays, or a
            dataset that `cache` has already cached), so there is nothing to
            decode and nothing to cache again.

    Example:

    ```python
    info = keras_simclr.data.load_image_folder("/data/cifar10", "train")
    info = info.cache()  # decode once; every pipeline built on it shares it
    train = keras_simclr.data.pretraining_dataset(info, batch_size=512)
    ```
    """

    dataset: tf.data.Dataset
    num_examples: int
    num_classes: int
    class_names: list
    image_size: tuple
    labels: np.ndarray = dataclasses.field(default=None, repr=False)
    in_memory: bool = False

    def __post_init__(self):
        object.__setattr__(self, "num_examples", int(self.num_examples))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "class_names", [str(c) for c in self.class_names])
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        if self.labels is not None:
            labels = np.asarray(self.labels, np.int32)
            if labels.shape != (self.num_examples,):
                raise ValueError(
                    f"labels must have shape ({self.num_examples},). "
                    f"Received: labels.shape={labels.shape}"
                )
            object.__setattr__(self, "labels", labels)

    @property
    def nbytes(self):
        """Bytes of all images decoded: `num_examples * H * W * 3`."""
        return self.num_examples * self.image_size[0] * self.image_size[1] * 3

    def cache(self, limit_bytes=DEFAULT_CACHE_LIMIT_BYTES):
        """This dataset decoded once and kept in memory, if it fits.

        The first full pass decodes and stores every element; later passes
        (epochs) and every pipeline built on the returned `DatasetInfo`
        (training and evaluation alike) read the one in-memory copy. Data
        already in memory, or larger than `limit_bytes` (estimated as
        `nbytes`), is returned unchanged.

        Args:
            limit_bytes: the most bytes of decoded images to keep in memory.

        Returns:
            a `DatasetInfo` with `in_memory=True`, or this one.
        """
        if self.in_memory:
            return self
        if self.nbytes > limit_bytes:
            _logger.info(
                "Not caching %d images of %s: %d bytes exceed the limit of %d.",
                self.num_examples, self.image_size, self.nbytes, limit_bytes,
            )
            return self
        return dataclasses.replace(self, dataset=self.dataset.cache(), in_memory=True)
