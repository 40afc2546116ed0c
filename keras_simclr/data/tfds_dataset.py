"""Labelled images from a TensorFlow Datasets (tfds) dataset."""

import sys

import numpy as np
import tensorflow as tf

from keras_simclr.data.resizing import resize_image
from keras_simclr.data.resizing import standardize_image_size
from keras_simclr.data.tf_image_dataset import TFImageDataset


def _ensure_importlib_resources():
    """Lets tensorflow-datasets prepare datasets without `importlib_resources`.

    tensorflow-datasets 4.9.10 uses the `importlib_resources` backport when it
    prepares any dataset but declares it only for Python < 3.9
    (tensorflow/datasets#11212). Where the backport is missing, the standard
    library's `importlib.resources` (the same API, `abc.Traversable`
    included, from Python 3.11) stands in for it.
    """
    try:
        import importlib_resources  # noqa: F401
    except ImportError:
        import importlib.resources

        try:
            import importlib.resources.abc  # noqa: F401  (Python >= 3.11)
        except ImportError:
            return
        sys.modules.setdefault("importlib_resources", importlib.resources)


def _tfds_load(name, split, data_dir):
    import tensorflow_datasets as tfds

    _ensure_importlib_resources()
    try:
        return tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, with_info=True)
    except ModuleNotFoundError as error:
        if error.name != "importlib_resources":
            raise
        raise ModuleNotFoundError(
            "tensorflow-datasets needs the `importlib_resources` package to "
            f"prepare {name!r}; install it with `pip install importlib-resources`.",
            name=error.name,
        ) from error


def load_tfds(name, split="train", data_dir=None, image_size=None):
    """Loads a labelled image dataset by name with `tfds.load`.

    The dataset is read as `(image, label)` through its supervised keys; it
    is downloaded and prepared into `data_dir` first if it is not there.
    Grayscale images are repeated to RGB.

    Args:
        name: tfds name, e.g. `"cifar10"`, `"stl10"`, `"imagenet2012"`.
        split: tfds split, slices included, e.g. `"train"`, `"test"`,
            `"train[:10%]"`.
        data_dir: tfds `data_dir` (`--tfds_data_dir`); `None`: tfds's default
            (`~/tensorflow_datasets` or `$TFDS_DATA_DIR`).
        image_size: `(H, W)` or an int to resize to; `None`: the dataset's own
            size, which must then be fixed (give it for ImageNet).

    Returns:
        a `TFImageDataset` of `(uint8 (H, W, 3) image, int32 label)`.

    Raises:
        ValueError: the dataset is unknown, has no image and class-label
            supervised keys, or has images of varying size and no
            `image_size` was given.

    Example:

    ```python
    train = load_tfds("cifar10", "train", data_dir="/data/tfds")
    ```
    """
    import tensorflow_datasets as tfds

    image_size = standardize_image_size(image_size)
    dataset, info = _tfds_load(name, split, data_dir)
    keys = info.supervised_keys
    features = info.features
    if (
        not isinstance(keys, tuple)
        or len(keys) != 2
        or not all(isinstance(k, str) and k in features for k in keys)
        or not isinstance(features[keys[0]], tfds.features.Image)
        or not isinstance(features[keys[1]], tfds.features.ClassLabel)
    ):
        raise ValueError(
            f"The tfds dataset {name!r} is not an (image, class label) dataset. "
            f"Received: supervised_keys={keys}, features={features}"
        )
    image_feature = features[keys[0]]
    height, width, channels = image_feature.shape
    if channels not in (1, 3) or image_feature.np_dtype != np.uint8:
        raise ValueError(
            f"The images of {name!r} must be uint8 with 1 or 3 channels. "
            f"Received: shape={image_feature.shape}, dtype={image_feature.np_dtype}"
        )
    if image_size is None:
        if height is None or width is None:
            raise ValueError(
                f"The images of {name!r} vary in size ({image_feature.shape}); "
                "give image_size. Received: image_size=None"
            )
        image_size = (height, width)

    def prepare(image, label):
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        return resize_image(image, image_size), tf.cast(label, tf.int32)

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    class_names = list(features[keys[1]].names)
    return TFImageDataset(
        dataset=dataset,
        num_examples=info.splits[split].num_examples,
        num_classes=len(class_names),
        class_names=class_names,
        image_size=image_size,
    )
