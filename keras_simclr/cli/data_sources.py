"""The data a subcommand's flags name: `--image_folder` (any layout), a tfds `--dataset`,
and `--eval_folder`."""

import os
from typing import NamedTuple

# kNN feature extraction batch (inference only: memory, not results, depends on it).
EVALUATION_BATCH_SIZE = 512


class TrainingData(NamedTuple):
    """What `keras-simclr pretrain` trains and evaluates on (`load_training_data`).

    Attributes:
        train: the training images, an `ImageDataset` (cached; after
            `--train_examples`); unlabelled (`num_classes` 0) for a folder of
            images without the split layout.
        knn_bank: the kNN memory bank, a labelled `ImageDataset` at the
            training `image_size` (cached), or `None` without labels.
        knn_queries: the kNN queries, likewise, or `None` without labels.
        batches: what `fit` takes: reshuffled every epoch; with
            `--deterministic` from memory, in an order derived from
            (seed, epoch).
        image_size: the training images' side.
    """

    train: object
    knn_bank: object
    knn_queries: object
    batches: object
    image_size: int

    @property
    def probe_classes(self):
        """The classes of the online linear probe: `train.num_classes`, or
        `None` when the training images have fewer than two classes (no labels)."""
        return self.train.num_classes if self.train.num_classes >= 2 else None


def has_split_layout(folder, split):
    """Whether `folder/split` is a folder with at least one (non-hidden) sub-folder.

    How `--image_folder` tells `ROOT/<split>/<class>/*` (labelled, split)
    from any other folder of images (read whole, unlabelled).
    """
    split_folder = os.path.join(os.fspath(folder), split)
    if not os.path.isdir(split_folder):
        return False
    return any(
        not name.startswith(".") and os.path.isdir(os.path.join(split_folder, name))
        for name in os.listdir(split_folder)
    )


def knn_skip_reason(config):
    """The line `pretrain` prints when it skips kNN evaluation: what has no labels, and the fix.

    Meaningful when `load_training_data(config)` returned no `knn_bank`:
    `--image_folder` is not laid out as `ROOT/<train_split>/<class>/` and no
    `--eval_folder` was given.
    """
    split = config["train_split"]
    return (
        f"kNN evaluation skipped: {config['image_folder']} has no labelled splits "
        f"({split}/<class>/ folders); pass --eval_folder ROOT with "
        f"ROOT/{{{split},{config['eval_split']}}}/<class>/ images to evaluate"
    )


def load_split(config, split, image_size=None, in_memory=False, folder=None):
    """One split of `--image_folder` or `--dataset` as a `keras_simclr.data.ImageDataset`.

    An image folder's files are all checked first: a bad image raises
    `keras_simclr.data.BadImagesError` naming it (or, with
    `--skip_bad_images`, is dropped with a warning).

    Args:
        config: the flags by name.
        split: the split's name (`train`, `test`, ...); `None` with an
            image folder: every image under it, in any layout (unlabelled
            unless laid out as `ROOT/<class>/`).
        image_size: the side to resize to; `None`: the images' own size.
        in_memory: decode an image folder into NumPy arrays (no TensorFlow).
        folder: the image folder to read instead of `--image_folder` (e.g.
            `--eval_folder`).
    """
    from keras_simclr import data

    folder = folder or config["image_folder"]
    if folder:
        return data.load_image_folder(
            folder,
            split,
            image_size=image_size,
            skip_bad_images=config.get("skip_bad_images", False),
            in_memory=in_memory,
        )
    return data.load_tfds(
        config["dataset"], split, data_dir=config["tfds_data_dir"], image_size=image_size
    )


def _training_split(config):
    """The `load_split` split of the training images: `--train_split`, or `None`
    (every image) for an image folder without the split layout."""
    folder = config["image_folder"]
    if folder and not has_split_layout(folder, config["train_split"]):
        return None
    return config["train_split"]


def load_training_data(config):
    """The `TrainingData` of `keras-simclr pretrain`.

    `--image_folder DIR` is read one of two ways:

    - `DIR/<train_split>/<class>/*` (split layout): the training split is
      pretrained on (after `--train_examples`) and is the kNN memory bank;
      `DIR/<eval_split>` holds the kNN queries.
    - any other folder of images, flat or nested: every image under it is
      pretrained on, unlabelled (after `--train_examples`); no kNN unless
      `--eval_folder` is given.

    `--eval_folder ROOT` (`ROOT/{<train_split>,<eval_split>}/<class>/*`)
    replaces the kNN bank (its train split) and queries (its eval split),
    whatever the training data. Every image of every folder is checked
    before anything is built; an empty or image-less folder, and a batch
    larger than the training images, raise here, before a model exists.
    """
    from keras_simclr import data

    in_memory = config["input_pipeline"] == "numpy"
    image_size = config["image_size"]
    eval_folder = config.get("eval_folder")
    split = _training_split(config)
    if config["image_folder"] and not image_size:
        # Square images at the first image's height.
        image_size = data.image_folder_size(config["image_folder"], split)[0]
    train = load_split(config, split, image_size, in_memory)
    if train.image_size[0] != train.image_size[1]:
        # A tfds split of non-square images: square at its height.
        train = load_split(config, split, train.image_size[0], in_memory)
    image_size = train.image_size[0]
    if config["train_examples"]:
        train = train.take(config["train_examples"])
    train = train.cache()
    if eval_folder:
        knn_bank = load_split(config, config["train_split"], image_size, in_memory, eval_folder)
        knn_queries = load_split(config, config["eval_split"], image_size, in_memory, eval_folder)
        knn_bank, knn_queries = knn_bank.cache(), knn_queries.cache()
    elif split is None:
        knn_bank = knn_queries = None
    else:
        knn_bank = train
        knn_queries = load_split(config, config["eval_split"], image_size, in_memory).cache()
    fed = train.in_memory() if config["deterministic"] else train
    batches = fed.training_batches(config["batch_size"], seed=config["seed"])
    return TrainingData(train, knn_bank, knn_queries, batches, image_size)
