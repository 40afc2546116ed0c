"""Images from a folder laid out as `ROOT/<split>/<class>/*.jpg`, or in any layout.

The one set of folder rules both dataset implementations load by. With a
split (`load_image_folder(root, "train")`):

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

Without a split (`load_image_folder(root)`), every image under `root` at any
depth (`keras_simclr.data.image_files.find_images`: `.jpg .jpeg .png .bmp
.gif .webp`, hidden entries skipped), sorted by relative path, then shuffled
once with a fixed seed; labelled only in the layout `ROOT/<class>/<file>`,
else unlabelled (labels 0, no classes). The same checks and default size.

Either way each file's EXIF orientation is applied (read while checking).

This module imports TensorFlow only for `load_image_folder(...,
in_memory=False)`.
"""

import os
import random
from typing import NamedTuple

import numpy as np

from keras_simclr.data.array_image_dataset import ArrayImageDataset
from keras_simclr.data.image_check import BadImagesError
from keras_simclr.data.image_check import check_image
from keras_simclr.data.image_check import inspect_images
from keras_simclr.data.image_check import warn_bad_images
from keras_simclr.data.image_decoding import decode_images
from keras_simclr.data.image_decoding import image_shape
from keras_simclr.data.image_files import find_images
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


# What the examples of a whole folder (no split) are shuffled with.
_WHOLE_FOLDER_SHUFFLE_SEED = "*"


class FolderListing(NamedTuple):
    """What `list_image_folder` finds: the files in dataset order, and more.

    Attributes:
        paths: the image files, in dataset order.
        labels: int32 `(N,)`, one per file (all 0 for unlabelled data).
        class_names: class names in label order (empty for unlabelled data).
        first: the first good file in sorted order, whose size is the
            loaders' default `image_size`.
        orientations: int32 `(N,)` EXIF orientation of every file (1 to 8),
            or `None` when the files were not checked.
    """

    paths: list
    labels: np.ndarray
    class_names: list
    first: str
    orientations: np.ndarray


def _whole_folder_examples(root):
    """`(examples, class_names)` of every image under `root` (`find_images`),
    sorted by relative path; labels 0 and no classes unless the layout is
    `ROOT/<class>/<file>`."""
    files = find_images(root)
    labels = files.labels if files.labels is not None else np.zeros(files.num_images, np.int32)
    return list(zip(files.paths, labels.tolist())), files.class_names or []


def _examples(root, split):
    if split is None:
        return _whole_folder_examples(root)
    return _sorted_examples(root, split)


def _folder(root, split):
    root = os.fspath(root)
    return root if split is None else os.path.join(root, split)


def _shuffled(examples, split):
    examples = list(examples)
    random.Random(_WHOLE_FOLDER_SHUFFLE_SEED if split is None else split).shuffle(examples)
    return examples


def list_image_folder(root, split=None, check=True, skip_bad_images=False, num_threads=None):
    """The files of `root/<split>/<class>/*` (or of all `root`) and their labels, in dataset order.

    What both loaders read (see the module docstring for the rules).

    Args:
        root: folder holding one sub-folder per split, or any folder of
            images when `split` is `None`.
        split: the split's sub-folder, e.g. `"train"`; `None`: every image
            under `root`, in any layout (`find_images`).
        check: whether to check every file and read its EXIF orientation
            (`False`: list only).
        skip_bad_images: `False`: raise `BadImagesError` if any file cannot
            be decoded; `True`: leave those files out, with one
            `BadImagesWarning` that names them.
        num_threads: checking threads; `None`: one per CPU.

    Returns:
        a `FolderListing`: `(paths, labels, class_names, first, orientations)`.

    Raises:
        FileNotFoundError: `root` (or `root/split`) is not a folder.
        ValueError: the split holds no images in class folders, or `root`
            (without a split) holds no images at all.
        BadImagesError: (a `ValueError`) some files cannot be decoded and
            `skip_bad_images` is `False`, or none can.
    """
    examples, class_names = _examples(root, split)
    paths = [path for path, _ in examples]
    if check:
        bad, orientations = inspect_images(paths, num_threads=num_threads)
    else:
        bad, orientations = [], [1] * len(examples)
    # (path, label, orientation), sorted.
    examples = [example + (o,) for example, o in zip(examples, orientations)]
    if bad:
        folder = _folder(root, split)
        if not skip_bad_images or len(bad) == len(examples):
            raise BadImagesError(bad, len(examples), folder)
        warn_bad_images(bad, len(examples), folder)
        bad_paths = {path for path, _ in bad}
        first = next(example[0] for example in examples if example[0] not in bad_paths)
        examples = [
            example for example in _shuffled(examples, split) if example[0] not in bad_paths
        ]
    else:
        first = examples[0][0]
        examples = _shuffled(examples, split)
    return FolderListing(
        paths=[path for path, _, _ in examples],
        labels=np.array([label for _, label, _ in examples], np.int32),
        class_names=class_names,
        first=first,
        orientations=np.array([o for _, _, o in examples], np.int32) if check else None,
    )


def image_folder_size(root, split=None):
    """`(H, W)` of a split's (or folder's) first image that can be decoded: the loaders' default.

    The files are checked in sorted order (class then file; without a split,
    relative path) with `image_check.check_image` only up to the first good
    one, whose upright size is read from its header; the bad files are left
    to the loaders to report (or skip).

    Args:
        root: folder holding one sub-folder per split, or any folder of
            images when `split` is `None`.
        split: the split's sub-folder; `None`: every image under `root`.

    Raises:
        FileNotFoundError: `root` (or `root/split`) is not a folder.
        ValueError: no images (in class folders of the split, or at all).
        BadImagesError: no file can be decoded.

    Example:

    ```python
    height, width = image_folder_size("/data/cifar10", "train")  # (32, 32)
    ```
    """
    examples, _ = _examples(root, split)
    bad = []
    for path, _ in examples:
        reason = check_image(path)
        if reason is None:
            return image_shape(path)
        bad.append((path, reason))
    raise BadImagesError(bad, len(examples), _folder(root, split))


def load_image_folder(
    root, split=None, image_size=None, skip_bad_images=False, in_memory=False, num_threads=None
):
    """Reads the images of `root/<split>/<class>/*`, or every image under `root`.

    With a `split`, the labelled images of `root/<split>/<class>/*.{jpg,jpeg,png}`.
    With `split=None`, every image under `root` in any layout, flat or
    nested (`find_images`: `.jpg .jpeg .png .bmp .gif .webp`, any depth),
    labelled only when the layout is `ROOT/<class>/<file>`; otherwise
    unlabelled: `num_classes` 0, no class names, every label 0.

    Both implementations read the same files in the same order with the same
    labels, checks, errors and warnings (the rules of the module docstring),
    apply each file's EXIF orientation, and resize only the images not of
    `image_size` (bilinear, antialiased; `keras_simclr.data.resizing`):

    - `in_memory=False`: a `TFImageDataset`, decoding each file with
      `tf.io.decode_image` (JPEG, PNG, GIF, BMP, WebP; grayscale and RGBA
      read as RGB) as the pipeline runs; call `.cache()` to decode once.
    - `in_memory=True`: an `ArrayImageDataset`, every file decoded now with
      Pillow in a thread pool into one uint8 array; TensorFlow is never
      imported. Pixels equal TensorFlow's accurate JPEG decoding
      (`dct_method="INTEGER_ACCURATE"`), and differ from the `tf.data`
      implementation's default (fast) one by a few levels.

    Args:
        root: folder holding one sub-folder per split, or (`split=None`)
            any folder of images.
        split: the split's sub-folder, e.g. `"train"`; `None`: every image
            under `root`.
        image_size: `(H, W)` or an int; `None`: the upright size of the
            first image that can be decoded, in sorted order
            (`image_folder_size`).
        skip_bad_images: leave out the files that cannot be decoded (one
            warning names them) instead of raising; `num_examples` is then
            that much smaller.
        in_memory: decode everything now with Pillow (see above).
        num_threads: checking (and, in memory, decoding) threads; `None`:
            one per CPU.

    Returns:
        an `ImageDataset`, labels in sorted class-name order.

    Raises:
        FileNotFoundError: `root` (or `root/split`) is not a folder.
        BadImagesError: (a `ValueError`) some files cannot be decoded and
            `skip_bad_images` is `False`, or none can.
        ValueError: the split holds no images in class folders, `root`
            (without a split) holds no images at all, or `image_size` is not
            a valid size.

    Example:

    ```python
    train = load_image_folder("/data/cifar10", "train")
    test = load_image_folder("/data/cifar10", "test", image_size=train.image_size)
    photos = load_image_folder("/photos", image_size=96)  # any layout, unlabelled
    ```
    """
    image_size = standardize_image_size(image_size)
    listing = list_image_folder(
        root, split, skip_bad_images=skip_bad_images, num_threads=num_threads
    )
    if image_size is None:
        image_size = image_shape(listing.first)
    if in_memory:
        images = decode_images(listing.paths, image_size=image_size, num_threads=num_threads)
        return ArrayImageDataset(
            images=images, labels=listing.labels, class_names=listing.class_names
        )
    from keras_simclr.data.tf_image_dataset import TFImageDataset

    return TFImageDataset.from_files(
        listing.paths,
        listing.labels,
        listing.class_names,
        image_size,
        orientations=listing.orientations,
    )
