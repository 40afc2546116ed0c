"""`TFImageDataset`: a labelled image dataset as a `tf.data` pipeline."""

import dataclasses
import logging
import numbers

import numpy as np
import tensorflow as tf

from keras_simclr.data.array_image_dataset import ArrayImageDataset
from keras_simclr.data.array_image_dataset import load_arrays
from keras_simclr.data.image_dataset import ImageDataset
from keras_simclr.data.image_dataset import check_batch_size
from keras_simclr.data.image_dataset import check_count
from keras_simclr.data.image_dataset import selection_mask
from keras_simclr.data.resizing import resize_image

# Decoded images up to this many bytes are cached in memory (decoded once).
DEFAULT_CACHE_LIMIT_BYTES = 8 * 1024**3

# Shuffle buffer when the data is not in memory (decoded images of
# ImageNet size: about 1.5 GB at 224 x 224).
DEFAULT_SHUFFLE_BUFFER = 10_000

_logger = logging.getLogger(__name__)


def orient_image(image, orientation):
    """An `(H, W, C)` image with its EXIF `orientation` (1 to 8) applied.

    The rotations and flips of Pillow's `ImageOps.exif_transpose`: 2 mirrors
    left-right, 3 rotates 180 degrees, 4 mirrors top-bottom, 5 transposes, 6
    rotates 90 degrees clockwise, 7 transposes across the anti-diagonal, 8
    rotates 90 degrees counter-clockwise; 1 (upright) and any other value
    return the image unchanged.

    Args:
        image: a tensor `(H, W, C)`.
        orientation: an int32 scalar tensor (or int).

    Returns:
        the upright image, `(W, H, C)` for orientations 5 to 8.
    """

    image = tf.convert_to_tensor(image)

    def transpose(x):
        return tf.transpose(x, [1, 0, 2])

    branches = [
        lambda: image,  # 1 (and anything out of range)
        lambda: tf.reverse(image, [1]),  # 2
        lambda: tf.reverse(image, [0, 1]),  # 3
        lambda: tf.reverse(image, [0]),  # 4
        lambda: transpose(image),  # 5
        lambda: tf.image.rot90(image, k=3),  # 6: clockwise
        lambda: transpose(tf.reverse(image, [0, 1])),  # 7
        lambda: tf.image.rot90(image, k=1),  # 8: counter-clockwise
    ]
    orientation = tf.cast(orientation, tf.int32)
    index = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, 0)
    return tf.switch_case(index, branches)


@dataclasses.dataclass(frozen=True, eq=False)
class TFImageDataset(ImageDataset):
    """A labelled image dataset: unbatched `(uint8 image, int32 label)` pairs.

    The `tf.data` implementation of `ImageDataset`, returned by
    `load_image_folder` and `load_tfds`. Images are decoded as the pipeline
    runs; `cache()` keeps them after the first pass.

    Args:
        dataset: `tf.data.Dataset` of `(image, label)`, image a uint8 tensor
            of shape `(H, W, 3)`, label an int32 scalar; unbatched.
        num_examples: number of elements of `dataset`.
        num_classes: number of classes (0 for unlabelled data, whose labels
            are all 0).
        class_names: class names in label order.
        image_size: `(H, W)` of every image.
        labels: optional int32 NumPy array of every label in dataset order,
            where it is known without reading the images (folders, arrays).
        cached: whether the elements come from memory (arrays, or a dataset
            that `cache` has already cached), so there is nothing to decode
            and nothing to cache again.

    Example:

    ```python
    train = keras_simclr.data.load_image_folder("/data/cifar10", "train")
    train = train.cache()  # decode once; every pipeline built on it shares it
    model.fit(train.training_batches(512, seed=0), epochs=800)
    ```
    """

    dataset: tf.data.Dataset
    num_examples: int
    num_classes: int
    class_names: list
    image_size: tuple
    labels: np.ndarray = dataclasses.field(default=None, repr=False)
    cached: bool = False

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

    @classmethod
    def from_files(cls, paths, labels, class_names, image_size, orientations=None):
        """Image files decoded by `tf.io.decode_image` and resized to `image_size`.

        JPEG, PNG, GIF, BMP and WebP; grayscale and RGBA read as RGB, a GIF's
        first frame; the EXIF `orientations` applied (`orient_image`); an
        image already of `image_size` passes through exactly, the others are
        resized (`keras_simclr.data.resizing`).

        Args:
            paths: the files, in dataset order.
            labels: int32 `(N,)`, one per file.
            class_names: class names in label order.
            image_size: `(H, W)`.
            orientations: `None`, or the EXIF orientation (1 to 8) of every
                file, as `keras_simclr.data.image_check.inspect_images`
                reads them. The pipeline orients images only when some
                orientation is not 1.
        """

        def decode(path):
            return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

        def load(path, label):
            return resize_image(decode(path), image_size), label

        def load_oriented(path, label, orientation):
            return resize_image(orient_image(decode(path), orientation), image_size), label

        orientations = None if orientations is None else np.asarray(orientations, np.int32)
        if orientations is not None and np.any(orientations != 1):
            dataset = tf.data.Dataset.from_tensor_slices((paths, labels, orientations))
            dataset = dataset.map(load_oriented, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
            dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return cls(
            dataset=dataset,
            num_examples=len(paths),
            num_classes=len(class_names),
            class_names=class_names,
            image_size=image_size,
            labels=labels,
        )

    @classmethod
    def from_arrays(cls, images, labels=None, class_names=None):
        """In-memory arrays as a `tf.data` pipeline; the arguments of `load_arrays`."""
        arrays = load_arrays(images, labels, class_names)
        return cls(
            dataset=tf.data.Dataset.from_tensor_slices((arrays.images, arrays.labels)),
            num_examples=arrays.num_examples,
            num_classes=arrays.num_classes,
            class_names=arrays.class_names,
            image_size=arrays.image_size,
            labels=arrays.labels,
            cached=True,
        )

    def take(self, count):
        count = check_count(count, self.num_examples)
        return dataclasses.replace(
            self,
            dataset=self.dataset.take(count),
            num_examples=count,
            labels=None if self.labels is None else self.labels[:count],
        )

    def cache(self, limit_bytes=DEFAULT_CACHE_LIMIT_BYTES):
        """This dataset decoded once and kept in memory, if it fits.

        The first full pass decodes and stores every element; later passes
        (epochs) and every pipeline built on the returned dataset (training
        and evaluation alike) read the one in-memory copy. Data already in
        memory, or larger than `limit_bytes` (estimated as `nbytes`), is
        returned unchanged.

        Args:
            limit_bytes: the most bytes of decoded images to keep in memory.

        Returns:
            a `TFImageDataset` with `cached=True`, or this one.
        """
        if self.cached:
            return self
        if self.nbytes > limit_bytes:
            _logger.info(
                "Not caching %d images of %s: %d bytes exceed the limit of %d.",
                self.num_examples,
                self.image_size,
                self.nbytes,
                limit_bytes,
            )
            return self
        return dataclasses.replace(self, dataset=self.dataset.cache(), cached=True)

    def in_memory(self):
        return ArrayImageDataset(*self.arrays(), class_names=self.class_names)

    def arrays(self, batch_size=1024):
        """Every image and label, in order, read in batches of `batch_size`."""
        images, labels = [], []
        for image_batch, label_batch in self.dataset.batch(batch_size):
            images.append(image_batch.numpy())
            labels.append(label_batch.numpy())
        if not images:
            height, width = self.image_size
            return np.zeros((0, height, width, 3), np.uint8), np.zeros((0,), np.int32)
        return np.concatenate(images), np.concatenate(labels)

    def read_labels(self):
        """Every label, in order, as an int32 array.

        Uses `labels` when known; otherwise reads the dataset once (which
        decodes the images of an uncached tfds dataset: call it on a cached
        one so that this pass fills the cache).
        """
        if self.labels is not None:
            return self.labels
        batches = [
            labels.numpy() for labels in self.dataset.map(lambda image, label: label).batch(8192)
        ]
        labels = np.concatenate(batches) if batches else np.zeros((0,), np.int32)
        if labels.shape != (self.num_examples,):
            raise ValueError(
                f"The dataset holds {labels.shape[0]} examples, not the "
                f"num_examples={self.num_examples} it claims."
            )
        return labels.astype(np.int32)

    def select(self, indices):
        """The examples at `indices`, in dataset order.

        Reads the whole dataset on each pass and keeps the chosen elements; on
        a cached dataset that pass reads memory only.
        """
        keep = selection_mask(indices, self.num_examples)
        mask = tf.constant(keep)
        dataset = (
            self.dataset.enumerate()
            .filter(lambda i, example: mask[i])
            .map(lambda i, example: example)
        )
        return dataclasses.replace(
            self,
            dataset=dataset,
            num_examples=int(keep.sum()),
            labels=None if self.labels is None else self.labels[keep],
        )

    def subset(self, fraction, seed=0):
        # The labels are read once, here, and known to the subset.
        known = dataclasses.replace(self, labels=self.read_labels())
        return ImageDataset.subset(known, fraction, seed)

    def training_batches(
        self,
        batch_size,
        seed=None,
        shuffle_buffer=None,
        cache=True,
        repeat=False,
        cache_limit_bytes=DEFAULT_CACHE_LIMIT_BYTES,
    ):
        """Shuffled `(uint8 images, int32 labels)` batches for `model.fit`.

        The pipeline is: cache (decode once, when the decoded images fit in
        `cache_limit_bytes`), shuffle (a new order every epoch), repeat
        (optional), batch with `drop_remainder=True`, prefetch. The labels
        ride along for an online probe; pretraining itself ignores them. To
        share one in-memory copy with `evaluation_batches` (e.g. a kNN monitor
        on the training set), call `cache()` first and use the result for
        both.

        Args:
            batch_size: global batch size; at most `num_examples`.
            seed: shuffle seed; the same seed gives the same sequence of
                epoch orders.
            shuffle_buffer: shuffle buffer size; `None`: the whole dataset
                when it is in memory (a uniform shuffle), else
                `DEFAULT_SHUFFLE_BUFFER`. Capped at `num_examples`.
            cache: whether to cache the decoded images in memory.
            repeat: whether to repeat forever (then give `fit` a
                `steps_per_epoch`); batches then cross epoch boundaries.
            cache_limit_bytes: cache only when `nbytes` is at most this.

        Returns:
            a `tf.data.Dataset` of `(images (batch_size, H, W, 3) uint8,
            labels (batch_size,) int32)`, `num_examples // batch_size`
            batches per epoch.
        """
        batch_size = check_batch_size(batch_size, self.num_examples)
        info = self.cache(cache_limit_bytes) if cache else self
        if shuffle_buffer is None:
            shuffle_buffer = info.num_examples if info.cached else DEFAULT_SHUFFLE_BUFFER
        elif not isinstance(shuffle_buffer, numbers.Integral) or shuffle_buffer < 1:
            raise ValueError(
                "shuffle_buffer must be a positive int. "
                f"Received: shuffle_buffer={shuffle_buffer!r}"
            )
        dataset = info.dataset.shuffle(
            min(int(shuffle_buffer), info.num_examples), seed=seed, reshuffle_each_iteration=True
        )
        if repeat:
            dataset = dataset.repeat()
        dataset = dataset.batch(batch_size, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def evaluation_batches(
        self, batch_size, cache=True, cache_limit_bytes=DEFAULT_CACHE_LIMIT_BYTES
    ):
        """Unshuffled batches of every example, the last one the remainder.

        Args:
            batch_size: batch size (may exceed `num_examples`).
            cache: whether to cache the decoded images in memory.
            cache_limit_bytes: cache only when `nbytes` is at most this.

        Returns:
            a `tf.data.Dataset` of `(uint8 images, int32 labels)` batches.
        """
        batch_size = check_batch_size(batch_size)
        info = self.cache(cache_limit_bytes) if cache else self
        return info.dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
