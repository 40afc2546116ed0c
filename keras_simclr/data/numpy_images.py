"""`NumpyImages`: labelled images decoded once into host memory, without TensorFlow.

The TensorFlow-free input path (made for the JAX backend): an image folder
(`load_numpy_image_folder`) or in-memory encoded images (`decode_images`) are
decoded once with Pillow in a thread pool into one uint8 `(N, H, W, 3)` array;
`ShuffledBatches`, a `keras.utils.PyDataset`, feeds `model.fit` shuffled,
full uint8 batches, and the model augments them inside its compiled step.

The folder is listed and checked by the same function as
`keras_simclr.data.load_image_folder` (`list_checked_image_folder`: classes
from the class folders of every split, the same example order, every file
checked by `image_check` before anything is decoded), and resized by the same
rule, so both paths give the same arrays (up to the JPEG decoder: Pillow and
TensorFlow both use libjpeg-turbo) and the same errors.

This module imports neither TensorFlow nor the TensorFlow-based loaders.
"""

import dataclasses
import io
import numbers
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from keras_simclr.data.image_check import BadImagesError
from keras_simclr.data.image_check import check_image
from keras_simclr.data.image_check import find_bad_images
from keras_simclr.data.image_check import warn_bad_images
from keras_simclr.data.image_utils import standardize_image_size

# The extensions of the files an image folder's class folders contribute
# (case-insensitive): those `tfds.ImageFolder` reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _resize_weights(size_in, size_out):
    """`(size_out, size_in)` weights of a triangle kernel of half-width
    `max(1, size_in / size_out)` input pixels around each output pixel's
    centre, clipped to the image and normalised: bilinear, antialiased when
    downsizing, as `tf.image.resize(..., "bilinear", antialias=True)`."""
    scale = size_out / size_in
    width = max(1.0, 1.0 / scale)
    centres = (np.arange(size_out) + 0.5) / scale - 0.5
    weights = np.maximum(
        0.0, 1.0 - np.abs(np.arange(size_in)[None, :] - centres[:, None]) / width
    )
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_image_array(image, image_size):
    """Resizes one uint8 `(h, w, 3)` NumPy image to `image_size`, if it differs.

    Bilinear with antialiasing, rounded to uint8: the resizing of the
    TensorFlow loaders (`image_utils.resize_image`), in NumPy. An image
    already of that size is returned untouched.
    """
    height, width = image_size
    if image.shape[:2] == (height, width):
        return image
    rows = _resize_weights(image.shape[0], height)  # (H, h)
    cols = _resize_weights(image.shape[1], width)  # (W, w)
    out = np.tensordot(rows, image.astype(np.float32), axes=(1, 0))  # (H, w, 3)
    out = np.matmul(cols[None], out)  # (1, W, w) @ (H, w, 3) -> (H, W, 3)
    return np.clip(np.round(out), 0.0, 255.0).astype(np.uint8)


def _open(source):
    from PIL import Image

    return Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)


def _describe(source, index):
    if isinstance(source, (bytes, bytearray)):
        return f"image {index} ({len(source)} bytes)"
    return repr(os.fspath(source))


def _decode_one(source, index, image_size):
    """One image (a path or encoded bytes) as uint8 RGB `(H, W, 3)`."""
    try:
        with _open(source) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"Cannot decode the image {_describe(source, index)} ({error}).") from error
    if image_size is not None:
        array = resize_image_array(array, image_size)
    return array


def _image_shape(source, index=0):
    """`(H, W)` of an image from its header (no full decode)."""
    try:
        with _open(source) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"Cannot decode the image {_describe(source, index)} ({error}).") from error
    return int(height), int(width)


def _default_threads():
    return os.cpu_count() or 1


def decode_images(sources, image_size=None, num_threads=None):
    """Decodes images into one uint8 `(N, H, W, 3)` array with Pillow.

    Decoding runs in a thread pool (Pillow releases the GIL while it decodes)
    and writes straight into the preallocated result. Grayscale, palette and
    RGBA images are read as RGB; images not of `image_size` are resized
    (bilinear, antialiased, as `load_image_folder` does).

    Args:
        sources: a sequence of encoded images (`bytes`, e.g. JPEG or PNG
            files read into memory) or of file paths.
        image_size: `(H, W)` or an int; `None`: the size of the first image.
        num_threads: decoding threads; `None`: one per CPU.

    Returns:
        a uint8 NumPy array `(len(sources), H, W, 3)`.

    Raises:
        ValueError: `sources` is empty, an image cannot be decoded, or
            `image_size` is not a valid size.

    Example:

    ```python
    images = decode_images(list_of_jpeg_bytes, image_size=32)
    ```
    """
    image_size = standardize_image_size(image_size)
    sources = list(sources)
    if not sources:
        raise ValueError("No images to decode. Received: sources=[]")
    if image_size is None:
        image_size = _image_shape(sources[0])
    images = np.empty((len(sources),) + tuple(image_size) + (3,), np.uint8)

    def store(index):
        images[index] = _decode_one(sources[index], index, image_size)

    threads = int(num_threads or _default_threads())
    if threads <= 1 or len(sources) == 1:
        for index in range(len(sources)):
            store(index)
    else:
        with ThreadPoolExecutor(threads) as pool:
            # list(): re-raises the first decoding error here.
            list(pool.map(store, range(len(sources))))
    return images


@dataclasses.dataclass(frozen=True, eq=False)
class NumpyImages:
    """Labelled images in host memory: uint8 `(N, H, W, 3)` and int32 `(N,)`.

    The TensorFlow-free counterpart of `DatasetInfo`, returned by
    `load_numpy_image_folder`; `batches` feeds `model.fit`, and
    `(data.images, data.labels)` is what `extract_features` and `KNNMonitor`
    take for evaluation.

    Args:
        images: uint8 array `(N, H, W, 3)`.
        labels: int32 array `(N,)`, class indices.
        class_names: class names in label order.

    Example:

    ```python
    train = load_numpy_image_folder("/data/cifar10", "train")
    model.fit(train.batches(512, seed=0), epochs=800)
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
        """The first `count` examples (all of them if there are fewer), as
        `take_examples` does for a `DatasetInfo`."""
        if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive int. Received: count={count!r}")
        count = min(int(count), self.num_examples)
        return dataclasses.replace(
            self, images=self.images[:count], labels=self.labels[:count]
        )

    def batches(self, batch_size, seed=None, **kwargs):
        """`ShuffledBatches` of `(images, labels)`; kwargs go to it."""
        return ShuffledBatches(self.images, self.labels, batch_size, seed=seed, **kwargs)


def sub_folders(folder):
    """Sorted names of the sub-folders of `folder`."""
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def _image_names(folder):
    # Every entry with an image extension, as tfds.ImageFolder lists them.
    return sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS))


def check_split_folder(root, split):
    """`(root, root/split)` after the checks both image-folder loaders make.

    Raises:
        FileNotFoundError: `root` is not a folder, or has no `split` folder
            (the message lists the splits it has).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            "The image folder does not exist or is not a folder. "
            f"Expected ROOT/<split>/<class>/*.jpg. Received: root={root!r}"
        )
    split_folder = os.path.join(root, split)
    if not os.path.isdir(split_folder):
        splits = sub_folders(root)
        raise FileNotFoundError(
            f"The image folder {root!r} has no {split!r} split; it holds "
            f"{splits if splits else 'no sub-folders'}. Expected "
            f"ROOT/<split>/<class>/*.jpg. Received: split={split!r}"
        )
    return root, split_folder


def no_images_error(split_folder):
    """The error for a split folder with no images in class sub-folders."""
    loose = [
        name
        for name in _image_names(split_folder)
        if os.path.isfile(os.path.join(split_folder, name))
    ]
    hint = (
        f" It holds {len(loose)} images directly; put them in one sub-folder per class."
        if loose
        else ""
    )
    return ValueError(
        f"The split folder {split_folder!r} holds no images "
        f"({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders.{hint} "
        "Expected ROOT/<split>/<class>/*.jpg."
    )


def _sorted_examples(root, split):
    """`(examples, class_names)`: `examples` the `(path, label)` of every image
    of `root/<split>/<class>/*`, in sorted class then file order; the classes
    are those of every split's class folders, sorted.

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders.
    """
    root, split_folder = check_split_folder(root, split)
    class_names = sorted(
        {name for s in sub_folders(root) for name in sub_folders(os.path.join(root, s))}
    )
    index = {name: i for i, name in enumerate(class_names)}
    examples = []
    for class_name in sub_folders(split_folder):
        folder = os.path.join(split_folder, class_name)
        label = index[class_name]
        examples.extend((os.path.join(folder, name), label) for name in _image_names(folder))
    if not examples:
        raise no_images_error(split_folder)
    return examples, class_names


def _shuffled(examples, split):
    """`examples` in dataset order: shuffled once with `random.Random(split)`,
    the order of `tfds.ImageFolder`."""
    examples = list(examples)
    random.Random(split).shuffle(examples)
    return examples


def _list_image_folder(root, split):
    """The files of `root/<split>/<class>/*` and their labels, in dataset
    order, unchecked.

    Class names from the class folders of every split, sorted; files sorted
    per class, then shuffled once with `random.Random(split)` (the order of
    `tfds.ImageFolder`).

    Returns:
        `(paths, labels (N,) int32, class_names, first)`, `first` the first
        image in sorted class then file order.

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders.
    """
    examples, class_names = _sorted_examples(root, split)
    first = examples[0][0]
    examples = _shuffled(examples, split)
    paths = [path for path, _ in examples]
    labels = np.array([label for _, label in examples], np.int32)
    return paths, labels, class_names, first


def list_checked_image_folder(root, split, skip_bad_images=False, num_threads=None):
    """The files of `root/<split>/<class>/*` and their labels, in dataset
    order, after checking that every one can be decoded.

    The listing both image-folder loaders (`load_image_folder`, tf.data, and
    `load_numpy_image_folder`) build on, so they read the same files in the
    same order. Class names come from the class folders of every split,
    sorted (a label means the same class in every split, even where a split
    lacks a class); files are sorted per class, then shuffled once with
    `random.Random(split)` (the order of `tfds.ImageFolder`), so the first
    examples mix the classes. Every file is checked with
    `image_check.find_bad_images`; bad files are left out *after* the
    shuffle, so the others keep their relative order.

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        skip_bad_images: `False`: raise `BadImagesError` if any file cannot
            be decoded; `True`: leave those files out, with one
            `BadImagesWarning` that names them.
        num_threads: checking threads; `None`: one per CPU.

    Returns:
        `(paths, labels (N,) int32, class_names, first)`: the good files,
        and `first` the first good image in sorted class then file order
        (whose size is the loaders' default `image_size`).

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders.
        BadImagesError: (a `ValueError`) some files cannot be decoded and
            `skip_bad_images` is `False`, or none can.
    """
    examples, class_names = _sorted_examples(root, split)
    split_folder = os.path.join(os.fspath(root), split)
    bad = find_bad_images([path for path, _ in examples], num_threads=num_threads)
    if bad:
        if not skip_bad_images or len(bad) == len(examples):
            raise BadImagesError(bad, len(examples), split_folder)
        warn_bad_images(bad, len(examples), split_folder)
        bad_paths = {path for path, _ in bad}
        first = next(path for path, _ in examples if path not in bad_paths)
        examples = [example for example in _shuffled(examples, split)
                    if example[0] not in bad_paths]
    else:
        first = examples[0][0]
        examples = _shuffled(examples, split)
    paths = [path for path, _ in examples]
    labels = np.array([label for _, label in examples], np.int32)
    return paths, labels, class_names, first


def image_folder_size(root, split):
    """`(H, W)` of a split's first image that can be decoded (in sorted class
    then file order; normally the first file): the size the image-folder
    loaders give by default.

    Checks the files in that order (with `image_check.check_image`) only up
    to the first good one, and reads its size from its header; it leaves the
    bad files to the loaders to report (or skip).

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders.
        BadImagesError: no file of the split can be decoded.
    """
    examples, _ = _sorted_examples(root, split)
    bad = []
    for path, _ in examples:
        reason = check_image(path)
        if reason is None:
            return _image_shape(path)
        bad.append((path, reason))
    raise BadImagesError(bad, len(examples), os.path.join(os.fspath(root), split))


def load_numpy_image_folder(
    root, split, image_size=None, num_threads=None, skip_bad_images=False
):
    """Decodes the labelled images of `root/<split>/<class>/*.{jpg,jpeg,png}`.

    The TensorFlow-free counterpart of `load_image_folder`: the same listing
    and check (`list_checked_image_folder`), so the same classes, example
    order, labels, bad-file errors and warnings; the same resizing
    (bilinear, antialiased, only for images not of `image_size`); but every
    image is decoded at once, with Pillow in a thread pool, into one uint8
    array in host memory.

    Every file of the split is checked before any is decoded: a file that
    cannot be decoded (corrupt, truncated, not an image) raises
    `BadImagesError`, naming each bad file and why, unless
    `skip_bad_images=True` leaves them out (with one `BadImagesWarning`).

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        image_size: `(H, W)` or an int; `None`: the size of the first image
            that can be decoded (first class folder, first file, in sorted
            order; `image_folder_size`).
        num_threads: checking and decoding threads; `None`: one per CPU.
        skip_bad_images: leave out the files that cannot be decoded (one
            warning names them) instead of raising; `num_examples` is then
            that much smaller.

    Returns:
        a `NumpyImages`, labels in sorted class-name order.

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        BadImagesError: (a `ValueError`) some files cannot be decoded and
            `skip_bad_images` is `False`, or none can.
        ValueError: the split holds no images in class folders, or
            `image_size` is not a valid size.

    Example:

    ```python
    train = load_numpy_image_folder("/data/cifar10", "train")
    test = load_numpy_image_folder("/data/cifar10", "test", image_size=train.image_size)
    ```
    """
    image_size = standardize_image_size(image_size)
    paths, labels, class_names, first = list_checked_image_folder(
        root, split, skip_bad_images=skip_bad_images, num_threads=num_threads
    )
    if image_size is None:
        image_size = _image_shape(first)
    images = decode_images(paths, image_size=image_size, num_threads=num_threads)
    return NumpyImages(images=images, labels=labels, class_names=class_names)


def _check_batch_size(batch_size, num_examples):
    if (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    if batch_size > num_examples:
        raise ValueError(
            f"batch_size={batch_size} is larger than the dataset's "
            f"{num_examples} examples, so no full batch can be made "
            f"(drop_remainder=True). Received: batch_size={batch_size}, "
            f"num_examples={num_examples}"
        )
    return int(batch_size)


class ShuffledBatches(keras.utils.PyDataset):
    """Shuffled, full uint8 batches of in-memory images, for `model.fit`.

    The NumPy counterpart of `pretraining_dataset`: every epoch is a new
    permutation of the examples, cut into `num_examples // batch_size` full
    batches (the remainder is dropped, so every batch has the same shape and
    a compiled step never recompiles). Epoch `e`'s order depends only on
    `(seed, e)`: the same seed gives the same sequence of orders, and a run
    resumed at `initial_epoch` sees the orders an uninterrupted run would.
    Batches are gathered from the array on demand (one copy of a batch, no
    decoding); with `workers > 1` Keras prepares them ahead in threads.
    Augmentation belongs in the model (e.g. `ContrastiveModel`'s augmenter),
    which receives the uint8 batch on the device.

    Args:
        images: uint8 array `(N, H, W, 3)`.
        labels: optional `(N,)` labels, yielded beside the images (for an
            online probe); `None`: batches are `(images,)`.
        batch_size: batch size, at most `N`.
        seed: shuffle seed; `None`: a random one.
        initial_epoch: the epoch the first `fit` epoch is (its order).
        repeat: `False`: one epoch per `fit` epoch (`len()` batches, the
            epoch advancing at each epoch's end); `True`: an endless stream
            of epochs (give `fit` a `steps_per_epoch`).
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` of
            `keras.utils.PyDataset`.

    Example:

    ```python
    train = load_numpy_image_folder("/data/cifar10", "train")
    batches = ShuffledBatches(train.images, train.labels, batch_size=512, seed=0)
    model.fit(batches, epochs=800, shuffle=False)
    ```
    """

    def __init__(
        self, images, labels=None, batch_size=256, seed=None, initial_epoch=0, repeat=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "images must be a (N, height, width, 3) array. "
                f"Received: images.shape={images.shape}, dtype={images.dtype}"
            )
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape[:1] != images.shape[:1]:
                raise ValueError(
                    f"labels must have one entry per image ({len(images)}). "
                    f"Received: labels.shape={labels.shape}"
                )
        self.images = images
        self.labels = labels
        self.batch_size = _check_batch_size(batch_size, len(images))
        self.seed = int(np.random.SeedSequence().entropy if seed is None else seed)
        self.epoch = int(initial_epoch)
        self.repeat = bool(repeat)
        self.batches_per_epoch = len(images) // self.batch_size
        self._orders = {}
        self._lock = threading.Lock()

    def epoch_order(self, epoch):
        """The permutation of the examples in epoch `epoch`."""
        with self._lock:
            order = self._orders.get(epoch)
            if order is None:
                rng = np.random.default_rng([self.seed, int(epoch)])
                order = rng.permutation(len(self.images))
                # Keep this epoch and the next few (enqueuers may run ahead).
                self._orders = {e: o for e, o in self._orders.items() if e > epoch - 2}
                self._orders[epoch] = order
            return order

    @property
    def num_batches(self):
        return None if self.repeat else self.batches_per_epoch

    def __len__(self):
        return self.batches_per_epoch

    def __getitem__(self, index):
        index = int(index)
        if index < 0 or (not self.repeat and index >= self.batches_per_epoch):
            raise IndexError(
                f"Batch index out of range [0, {self.batches_per_epoch}). Received: index={index}"
            )
        epoch = self.epoch + index // self.batches_per_epoch
        start = (index % self.batches_per_epoch) * self.batch_size
        chosen = self.epoch_order(epoch)[start : start + self.batch_size]
        images = self.images[chosen]
        if self.labels is None:
            return (images,)
        return images, self.labels[chosen]

    def on_epoch_end(self):
        if not self.repeat:
            self.epoch += 1
