"""Labelled image datasets from tfds, image folders and arrays, as uint8 tf.data."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

# Decoded images up to this size are cached in memory (decode once).
DEFAULT_CACHE_LIMIT_BYTES = 8 * 1024**3
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class ImageDataset:
    """A labelled image dataset: unbatched `(uint8 image, int32 label)` pairs.

    Attributes:
        dataset: `tf.data.Dataset` of `(image (H, W, 3) uint8, label int32)`.
        num_examples: number of elements.
        num_classes: number of classes.
        class_names: class names in label order.
        image_size: `(H, W)` of every image.
    """

    dataset: tf.data.Dataset
    num_examples: int
    num_classes: int
    class_names: list
    image_size: tuple

    def cache(self, limit_bytes=DEFAULT_CACHE_LIMIT_BYTES):
        """This dataset decoded once and kept in memory, if it fits.

        Pipelines built on the result (training and evaluation) share the one
        in-memory copy. Call it after `take_examples`.
        """
        size = self.num_examples * self.image_size[0] * self.image_size[1] * 3
        if size > limit_bytes:
            return self
        return dataclasses.replace(self, dataset=self.dataset.cache())


def _to_uint8(images):
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def _first_image_size(folder):
    from PIL import Image

    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                with Image.open(os.path.join(root, name)) as image:
                    return image.height, image.width
    return None


def load_image_folder(root, split, image_size=None, seed=0):
    """Reads `root/<split>/<class>/*.jpg` with `keras.utils.image_dataset_from_directory`.

    Class names are the sub-folder names in sorted order. Images of mixed
    sizes are resized (bilinear) to `image_size`. Files are listed in an
    order shuffled once with `seed` (so `take_examples` gives a random,
    class-mixed subset). Call `.cache()` on the result to decode only once.

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        image_size: `(H, W)` or an int; `None`: the size of the first image.
        seed: the file-order shuffle seed.

    Returns:
        an `ImageDataset`.

    Example:

    ```python
    train = load_image_folder("/data/cifar10", "train")
    ```
    """
    import keras

    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"The image folder does not exist. Received: image_folder={root!r}"
        )
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        splits = sorted(
            d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
        )
        raise FileNotFoundError(
            f"The image folder {root!r} has no {split!r} split; it holds "
            f"{splits or 'no sub-folders'}. Expected ROOT/<split>/<class>/*.jpg. "
            f"Received: split={split!r}"
        )
    first = _first_image_size(folder)
    if first is None:
        raise ValueError(
            f"The split folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}) "
            "in class sub-folders. Expected ROOT/<split>/<class>/*.jpg."
        )
    if image_size is None:
        image_size = first
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(v) for v in image_size)
    dataset = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        color_mode="rgb",
        batch_size=None,
        image_size=image_size,
        shuffle=True,
        seed=seed,
        interpolation="bilinear",
        verbose=False,
    )
    class_names = list(dataset.class_names)
    num_examples = len(dataset.file_paths)
    dataset = dataset.map(
        lambda image, label: (_to_uint8(image), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ImageDataset(dataset, num_examples, len(class_names), class_names, image_size)


def load_tfds(name, split, data_dir=None, image_size=None):
    """Loads a labelled image dataset by name with `tfds.load`.

    Args:
        name: tfds name, e.g. `"cifar10"`, `"stl10"`, `"imagenet2012"`.
        split: tfds split, e.g. `"train"`, `"test"`, `"train[:10%]"`.
        data_dir: tfds `data_dir` (`--tfds_data_dir`); `None`: tfds default.
        image_size: `(H, W)` or int to resize to; required when the dataset's
            images have no fixed size (ImageNet).

    Returns:
        an `ImageDataset`.

    Example:

    ```python
    train = load_tfds("cifar10", "train")
    ```
    """
    import tensorflow_datasets as tfds

    dataset, info = tfds.load(
        name, split=split, data_dir=data_dir, as_supervised=True, with_info=True
    )
    native = info.features["image"].shape[:2]
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if image_size is None:
        if None in native:
            raise ValueError(
                f"{name!r} has images of varying size; give image_size. "
                f"Received: image_size=None"
            )
        image_size = native
    image_size = tuple(int(v) for v in image_size)
    resize = tuple(native) != image_size

    def prepare(image, label):
        if resize:
            image = _to_uint8(tf.image.resize(image, image_size, antialias=True))
        return tf.ensure_shape(image, image_size + (3,)), tf.cast(label, tf.int32)

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    num_examples = int(info.splits[split].num_examples)
    class_names = list(info.features["label"].names)
    return ImageDataset(dataset, num_examples, len(class_names), class_names, image_size)


def load_arrays(images, labels=None, class_names=None):
    """Wraps in-memory images (and labels) as an `ImageDataset`.

    Args:
        images: uint8 `(N, H, W, 3)` array (floats in [0, 1] are scaled to
            uint8).
        labels: int `(N,)` array, or `None` (all zero: unlabelled).
        class_names: optional names; default `"0"`, `"1"`, ...

    Returns:
        an `ImageDataset`.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "images must be an (N, height, width, 3) array. "
            f"Received: images.shape={images.shape}, dtype={images.dtype}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(
                "images must be uint8, or floats in [0, 1]. "
                f"Received: dtype={images.dtype}"
            )
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    if labels is None:
        labels = np.zeros(len(images), np.int32)
    labels = np.asarray(labels).astype(np.int32)
    if labels.shape != (len(images),):
        raise ValueError(
            f"labels must have shape ({len(images)},). Received: labels.shape={labels.shape}"
        )
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return ImageDataset(
        dataset, len(images), len(class_names), list(class_names), images.shape[1:3]
    )


def take_examples(data, count):
    """The first `count` examples (a random subset for image folders, whose
    file order is shuffled once)."""
    if count < 1:
        raise ValueError(f"count must be positive. Received: count={count}")
    count = min(count, data.num_examples)
    return dataclasses.replace(
        data, dataset=data.dataset.take(count), num_examples=count
    )


def pretraining_dataset(data, batch_size, seed=None, shuffle_buffer=50_000):
    """Shuffled `(uint8 images, labels)` batches for `ContrastiveModel.fit`.

    Reshuffled every epoch, batched with `drop_remainder=True` (static
    shapes for TPUs and the compiled step), prefetched.

    Args:
        data: an `ImageDataset`.
        batch_size: global batch size; at most `data.num_examples`.
        seed: shuffle seed.
        shuffle_buffer: shuffle buffer size (capped at the dataset size).

    Returns:
        a `tf.data.Dataset`.
    """
    if batch_size > data.num_examples:
        raise ValueError(
            f"The batch size is larger than the {data.num_examples} examples of "
            f"the dataset, so no full batch can be made. Received: batch_size={batch_size}"
        )
    dataset = data.dataset.shuffle(
        min(shuffle_buffer, data.num_examples), seed=seed, reshuffle_each_iteration=True
    )
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(data, batch_size):
    """Unshuffled `(uint8 images, labels)` batches (the last one may be smaller)."""
    return data.dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def dataset_arrays(data):
    """All images and labels of an `ImageDataset` as NumPy arrays."""
    images, labels = [], []
    for image_batch, label_batch in data.dataset.batch(1024):
        images.append(image_batch.numpy())
        labels.append(label_batch.numpy())
    return np.concatenate(images), np.concatenate(labels)
