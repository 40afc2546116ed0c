"""Labelled images from a folder laid out as `ROOT/<split>/<class>/*.jpg`.

The one set of folder rules both dataset implementations load by:

- the classes are the class folders of *every* split, sorted, so a label
  means the same class in `train` and `test` even where a split lacks one;
- the files are those with an image extension (`IMAGE_EXTENSIONS`,
  case-insensitive), sorted per class, then shuffled once with
  `random.Random(split)` (the order of `tfds.ImageFolder`), so the first
  examples mix the classes and every pass gives the same order;
- every file is checked (`keras_simclr.data.image_check`) before anything is
  built: a corrupt, truncated or non-image file raises `BadImagesError`
  naming it, or with `skip_bad_images=True` is left out with one
  `BadImagesWarning` (after the shuffle, so the others keep their order);
- the default image size is that of the first good file in sorted order.

This module imports TensorFlow only for `load_image_folder(...,
in_memory=False)`.
"""

import os
import random

import numpy as np

from keras_simclr.data.array_image_dataset import ArrayImageDataset
from keras_simclr.data.image_check import BadImagesError
from keras_simclr.data.image_check import check_image
from keras_simclr.data.image_check import find_bad_images
from keras_simclr.data.image_check import warn_bad_images
from keras_simclr.data.image_decoding import decode_images
from keras_simclr.data.image_decoding import image_shape
from keras_simclr.data.resizing import standardize_image_size

# The extensions of the files an image folder's class folders contribute
# (case-insensitive): those `tfds.ImageFolder` reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _sub_folders(folder):
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def _image_names(folder):
    # Every entry with an image extension, as tfds.ImageFolder lists them.
    return sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS))


def _split_folder(root, split):
    """`root/split`, after checking both are folders.

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
        splits = _sub_folders(root)
        raise FileNotFoundError(
            f"The image folder {root!r} has no {split!r} split; it holds "
            f"{splits if splits else 'no sub-folders'}. Expected "
            f"ROOT/<split>/<class>/*.jpg. Received: split={split!r}"
        )
    return split_folder


def _no_images_error(split_folder):
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
    """`(examples, class_names)`: the `(path, label)` of every image of the
    split in sorted class then file order, and the classes of every split."""
    split_folder = _split_folder(root, split)
    root = os.fspath(root)
    class_names = sorted(
        {name for s in _sub_folders(root) for name in _sub_folders(os.path.join(root, s))}
    )
    index = {name: i for i, name in enumerate(class_names)}
    examples = []
    for class_name in _sub_folders(split_folder):
        folder = os.path.join(split_folder, class_name)
        label = index[class_name]
        examples.extend((os.path.join(folder, name), label) for name in _image_names(folder))
    if not examples:
        raise _no_images_error(split_folder)
    return examples, class_names


def _shuffled(examples, split):
    examples = list(examples)
    random.Random(split).shuffle(examples)
    return examples


def list_image_folder(root, split, check=True, skip_bad_images=False, num_threads=None):
    """The files of `root/<split>/<class>/*` and their labels, in dataset order.

    What both loaders read (see the module docstring for the rules).

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        check: whether to check every file (`False`: list only).
        skip_bad_images: `False`: raise `BadImagesError` if any file cannot
            be decoded; `True`: leave those files out, with one
            `BadImagesWarning` that names them.
        num_threads: checking threads; `None`: one per CPU.

    Returns:
        `(paths, labels (N,) int32, class_names, first)`: `first` the first
        (good) image in sorted class then file order, whose size is the
        loaders' default `image_size`.

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders.
        BadImagesError: (a `ValueError`) some files cannot be decoded and
            `skip_bad_images` is `False`, or none can.
    """
    examples, class_names = _sorted_examples(root, split)
    bad = find_bad_images([path for path, _ in examples], num_threads=num_threads) if check else []
    if bad:
        split_folder = os.path.join(os.fspath(root), split)
        if not skip_bad_images or len(bad) == len(examples):
            raise BadImagesError(bad, len(examples), split_folder)
        warn_bad_images(bad, len(examples), split_folder)
        bad_paths = {path for path, _ in bad}
        first = next(path for path, _ in examples if path not in bad_paths)
        examples = [
            example for example in _shuffled(examples, split) if example[0] not in bad_paths
        ]
    else:
        first = examples[0][0]
        examples = _shuffled(examples, split)
    paths = [path for path, _ in examples]
    labels = np.array([label for _, label in examples], np.int32)
    return paths, labels, class_names, first


def image_folder_size(root, split):
    """`(H, W)` of a split's first image that can be decoded: the loaders' default size.

    The files are checked in sorted class then file order (with
    `image_check.check_image`) only up to the first good one, whose size is
    read from its header; the bad files are left to the loaders to report
    (or skip).

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders.
        BadImagesError: no file of the split can be decoded.

    Example:

    ```python
    height, width = image_folder_size("/data/cifar10", "train")  # (32, 32)
    ```
    """
    examples, _ = _sorted_examples(root, split)
    bad = []
    for path, _ in examples:
        reason = check_image(path)
        if reason is None:
            return image_shape(path)
        bad.append((path, reason))
    raise BadImagesError(bad, len(examples), os.path.join(os.fspath(root), split))


def load_image_folder(
    root, split, image_size=None, skip_bad_images=False, in_memory=False, num_threads=None
):
    """Reads the labelled images of `root/<split>/<class>/*.{jpg,jpeg,png}`.

    Both implementations read the same files in the same order with the same
    labels, checks, errors and warnings (the rules of the module docstring),
    and resize only the images not of `image_size` (bilinear, antialiased;
    `keras_simclr.data.resizing`):

    - `in_memory=False`: a `TFImageDataset`, decoding each file with
      `tf.io.decode_image` (JPEG, PNG, GIF, BMP, WebP; grayscale and RGBA
      read as RGB) as the pipeline runs; call `.cache()` to decode once.
    - `in_memory=True`: an `ArrayImageDataset`, every file decoded now with
      Pillow in a thread pool into one uint8 array; TensorFlow is never
      imported. Pixels equal TensorFlow's accurate JPEG decoding
      (`dct_method="INTEGER_ACCURATE"`), and differ from the `tf.data`
      implementation's default (fast) one by a few levels.

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        image_size: `(H, W)` or an int; `None`: the size of the first image
            that can be decoded (first class folder, first file, in sorted
            order; `image_folder_size`).
        skip_bad_images: leave out the files that cannot be decoded (one
            warning names them) instead of raising; `num_examples` is then
            that much smaller.
        in_memory: decode everything now with Pillow (see above).
        num_threads: checking (and, in memory, decoding) threads; `None`:
            one per CPU.

    Returns:
        an `ImageDataset`, labels in sorted class-name order.

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        BadImagesError: (a `ValueError`) some files cannot be decoded and
            `skip_bad_images` is `False`, or none can.
        ValueError: the split holds no images in class folders, or
            `image_size` is not a valid size.

    Example:

    ```python
    train = load_image_folder("/data/cifar10", "train")
    test = load_image_folder("/data/cifar10", "test", image_size=train.image_size)
    ```
    """
    image_size = standardize_image_size(image_size)
    paths, labels, class_names, first = list_image_folder(
        root, split, skip_bad_images=skip_bad_images, num_threads=num_threads
    )
    if image_size is None:
        image_size = image_shape(first)
    if in_memory:
        images = decode_images(paths, image_size=image_size, num_threads=num_threads)
        return ArrayImageDataset(images=images, labels=labels, class_names=class_names)
    from keras_simclr.data.tf_image_dataset import TFImageDataset

    return TFImageDataset.from_files(paths, labels, class_names, image_size)
