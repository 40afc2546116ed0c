"""`ImageDataset`: the one interface of a labelled image dataset.

Two implementations hold the examples:

- `TFImageDataset` (`keras_simclr.data.tf_image_dataset`): a `tf.data`
  pipeline of `(uint8 image, int32 label)` elements, decoded on the fly
  (`load_image_folder`, `load_tfds`);
- `ArrayImageDataset` (`keras_simclr.data.array_image_dataset`): uint8 and
  int32 NumPy arrays in host memory, TensorFlow never imported
  (`load_image_folder(..., in_memory=True)`, `load_arrays`), made for the JAX
  backend.

Code that trains or evaluates calls only the methods below, so it does not
care which one it holds.

This module imports neither TensorFlow nor Keras.
"""

import abc
import numbers

import numpy as np

from keras_simclr.data.label_fraction import labeled_subset


def check_batch_size(batch_size, num_examples=None):
    """`batch_size` as an int, after the checks every batching makes.

    Args:
        batch_size: the batch size to check.
        num_examples: for batches that drop the remainder: the number of
            examples, which `batch_size` must not exceed.

    Raises:
        ValueError: `batch_size` is not a positive int, or exceeds
            `num_examples` (no full batch could be made).
    """
    if (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    if num_examples is not None and batch_size > num_examples:
        raise ValueError(
            f"batch_size={batch_size} is larger than the dataset's "
            f"{num_examples} examples, so no full batch can be made "
            f"(drop_remainder=True). Received: batch_size={batch_size}, "
            f"num_examples={num_examples}"
        )
    return int(batch_size)


def check_count(count, num_examples):
    """`min(count, num_examples)` for `take`, after checking `count` is a positive int."""
    if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive int. Received: count={count!r}")
    return min(int(count), int(num_examples))


def selection_mask(indices, num_examples):
    """A `(num_examples,)` bool mask of `indices`, after checking them.

    Raises:
        ValueError: `indices` is not a 1-D int array of distinct indices in
            `[0, num_examples)`.
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(
            f"indices must be a 1-D int array. Received: indices.shape={indices.shape}, "
            f"dtype={indices.dtype}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= num_examples):
        raise ValueError(
            f"indices must lie in [0, {num_examples}). "
            f"Received: indices in [{indices.min()}, {indices.max()}]"
        )
    keep = np.zeros(num_examples, bool)
    keep[indices] = True
    if keep.sum() != indices.size:
        raise ValueError("indices must not repeat. Received: repeated indices")
    return keep


class ImageDataset(abc.ABC):
    """A labelled image dataset: uint8 `(H, W, 3)` images and int32 labels.

    Returned by `load_image_folder`, `load_tfds` and `load_arrays`. It is
    immutable: every method that changes it returns a new one. Unlabelled
    data (`load_arrays` without labels) has all labels 0, `num_classes=0`
    and no class names.

    Attributes:
        num_examples: the number of examples.
        num_classes: the number of classes (0 for unlabelled data).
        class_names: class names in label order.
        image_size: `(H, W)` of every image.

    Example:

    ```python
    train = keras_simclr.data.load_image_folder("/data/cifar10", "train")
    test = keras_simclr.data.load_image_folder("/data/cifar10", "test")
    train, test = train.cache(), test.cache()  # decode once
    model.fit(train.training_batches(512, seed=0), epochs=800)
    knn = KNNMonitor(train.evaluation_batches(512), test.evaluation_batches(512), 10)
    ```
    """

    num_examples: int
    num_classes: int
    class_names: list
    image_size: tuple

    @property
    def nbytes(self):
        """Bytes of all images decoded: `num_examples * H * W * 3`."""
        return self.num_examples * self.image_size[0] * self.image_size[1] * 3

    @abc.abstractmethod
    def take(self, count):
        """The first `count` examples (all of them if there are fewer).

        Image folders and tfds datasets store their examples in a fixed,
        class-mixed order, so the first examples are a small sample of every
        class; for a balanced subset use `subset`.

        Args:
            count: how many examples to keep, a positive int.

        Returns:
            an `ImageDataset` of the same implementation.
        """

    @abc.abstractmethod
    def cache(self):
        """This dataset decoded once and kept in memory, where that applies.

        Returns:
            an `ImageDataset` of the same implementation (this one if its
            examples are already in memory).
        """

    @abc.abstractmethod
    def in_memory(self):
        """These examples as NumPy arrays: an `ArrayImageDataset`.

        Returns:
            an `ArrayImageDataset` (this one if it is one).
        """

    @abc.abstractmethod
    def arrays(self):
        """Every image and label, in order.

        Returns:
            `(images (N, H, W, 3) uint8, labels (N,) int32)` NumPy arrays.
        """

    @abc.abstractmethod
    def read_labels(self):
        """Every label, in order, as an int32 `(N,)` NumPy array.

        Known without decoding for image folders and arrays; otherwise the
        dataset is read once.
        """

    @abc.abstractmethod
    def select(self, indices):
        """The examples at `indices`, in dataset order.

        Args:
            indices: distinct int indices in `[0, num_examples)`.

        Returns:
            an `ImageDataset` of the same implementation.
        """

    @abc.abstractmethod
    def training_batches(self, batch_size, seed=None):
        """Shuffled, full `(uint8 images, int32 labels)` batches for `model.fit`.

        Every epoch is a new order of the examples, cut into
        `num_examples // batch_size` batches of exactly `batch_size`
        (the remainder is dropped: a static batch shape, as TPUs and a
        compiled step need); the same seed gives the same orders.

        Args:
            batch_size: the global batch size; at most `num_examples`.
            seed: shuffle seed; `None`: a random one.

        Raises:
            ValueError: `batch_size` is not a positive int or exceeds
                `num_examples`.
        """

    @abc.abstractmethod
    def evaluation_batches(self, batch_size):
        """`(uint8 images, int32 labels)` batches of every example, in order.

        The last batch holds the remainder. What `extract_features`,
        `evaluate_knn` and `KNNMonitor` take.

        Args:
            batch_size: batch size (may exceed `num_examples`).
        """

    def subset(self, fraction, seed=0):
        """A per-class balanced `fraction` of the examples.

        The examples `labeled_subset(labels, fraction, seed)` chooses (see
        there for the counts), in dataset order: SimCLR's 1% and 10%
        semi-supervised splits.

        Args:
            fraction: in (0, 1].
            seed: the random seed.

        Returns:
            an `ImageDataset` of the same implementation.

        Example:

        ```python
        train = load_image_folder("/data/imagenet", "train", image_size=224)
        ten_percent = train.cache().subset(0.1, seed=0)
        ```
        """
        indices = labeled_subset(
            self.read_labels(), fraction, seed, num_classes=self.num_classes or None
        )
        return self.select(indices)
