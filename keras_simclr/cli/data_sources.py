"""The data a subcommand's flags name: `--image_folder` or a tfds `--dataset`."""

# kNN feature extraction batch (inference only: memory, not results, depends on it).
EVALUATION_BATCH_SIZE = 512


def load_split(config, split, image_size=None, in_memory=False):
    """One split of `--image_folder` or `--dataset` as a `keras_simclr.data.ImageDataset`.

    An image folder's files are all checked first: a bad image raises
    `keras_simclr.data.BadImagesError` naming it (or, with
    `--skip_bad_images`, is dropped with a warning).

    Args:
        config: the flags by name.
        split: the split's name (`train`, `test`, ...).
        image_size: the side to resize to; `None`: the images' own size.
        in_memory: decode an image folder into NumPy arrays (no TensorFlow).
    """
    from keras_simclr import data

    if config["image_folder"]:
        return data.load_image_folder(
            config["image_folder"],
            split,
            image_size=image_size,
            skip_bad_images=config.get("skip_bad_images", False),
            in_memory=in_memory,
        )
    return data.load_tfds(
        config["dataset"], split, data_dir=config["tfds_data_dir"], image_size=image_size
    )


def load_training_data(config):
    """`(train, evaluation, batches, image_size)` for `keras-simclr pretrain`.

    Every image of both splits is checked before anything is built; a batch
    larger than the training split raises here, before a model exists.
    `batches` is what `fit` takes: reshuffled every epoch; with
    `--deterministic` from memory, in an order derived from (seed, epoch).
    """
    from keras_simclr import data

    in_memory = config["input_pipeline"] == "numpy"
    image_size = config["image_size"]
    if config["image_folder"] and not image_size:
        # Square images at the first image's height.
        image_size = data.image_folder_size(config["image_folder"], config["train_split"])[0]
    train = load_split(config, config["train_split"], image_size, in_memory)
    if train.image_size[0] != train.image_size[1]:
        # A tfds split of non-square images: square at its height.
        train = load_split(config, config["train_split"], train.image_size[0], in_memory)
    image_size = train.image_size[0]
    if config["train_examples"]:
        train = train.take(config["train_examples"])
    train = train.cache()
    evaluation = load_split(config, config["eval_split"], image_size, in_memory).cache()
    fed = train.in_memory() if config["deterministic"] else train
    batches = fed.training_batches(config["batch_size"], seed=config["seed"])
    return train, evaluation, batches, image_size
