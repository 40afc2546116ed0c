"""Labelled images from a folder laid out as `ROOT/<split>/<class>/*.jpg`."""

import os

import tensorflow as tf

from keras_simclr.data.dataset_info import DatasetInfo
from keras_simclr.data.image_utils import resize_image
from keras_simclr.data.image_utils import standardize_image_size
from keras_simclr.data.numpy_images import IMAGE_EXTENSIONS
from keras_simclr.data.numpy_images import check_split_folder
from keras_simclr.data.numpy_images import no_images_error
from keras_simclr.data.numpy_images import sub_folders


def _images_in(folder):
    return sorted(
        name
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS)
        and os.path.isfile(os.path.join(folder, name))
    )


def _first_image(split_folder):
    """Path of the first image, in sorted class then file order, or `None`."""
    for class_name in sub_folders(split_folder):
        images = _images_in(os.path.join(split_folder, class_name))
        if images:
            return os.path.join(split_folder, class_name, images[0])
    return None


def _image_shape(path):
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        raise ValueError(
            f"Cannot decode the image {path!r} ({error.message.strip()})."
        ) from error
    return int(image.shape[0]), int(image.shape[1])


def load_image_folder(root, split, image_size=None):
    """Reads the labelled images of `root/<split>/<class>/*.{jpg,jpeg,png}`.

    The folder is indexed by `tfds.ImageFolder` (rather than
    `keras.utils.image_dataset_from_directory`) because it names the classes
    from the class folders of *every* split, so a label means the same class
    in `train` and `test` even when a split lacks a class; it counts each
    split without reading the images; it keeps the images at their stored
    size and dtype (uint8), so images already of `image_size` pass through
    exactly and only the others are resized; and it lists the files in a
    fixed order, shuffled once with a per-split seed, so the first examples
    (`take_examples`) mix the classes and every pass yields the same order.
    Keras's function, unbatched, resizes every image to float32 and
    reshuffles the files on every pass.

    Images that are not of `image_size` are resized (bilinear, antialiased);
    grayscale and RGBA images are read as RGB. Call `.cache()` on the result
    to decode only once.

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        image_size: `(H, W)` or an int; `None`: the size of the first image
            (first class folder, first file, in sorted order).

    Returns:
        a `DatasetInfo` of `(uint8 (H, W, 3) image, int32 label)`, labels in
        sorted class-name order.

    Raises:
        FileNotFoundError: `root` or `root/split` is not a folder.
        ValueError: the split holds no images in class folders, or the first
            image cannot be decoded, or `image_size` is not a valid size.

    Example:

    ```python
    train = load_image_folder("/data/cifar10", "train")
    test = load_image_folder("/data/cifar10", "test", image_size=train.image_size)
    ```
    """
    import tensorflow_datasets as tfds

    image_size = standardize_image_size(image_size)
    root, split_folder = check_split_folder(root, split)
    first = _first_image(split_folder)
    if first is None:
        raise no_images_error(split_folder)
    if image_size is None:
        image_size = _image_shape(first)

    builder = tfds.ImageFolder(root)
    class_names = list(builder.info.features["label"].names)
    num_examples = builder.info.splits[split].num_examples
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    dataset = dataset.map(
        lambda image, label: (resize_image(image, image_size), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return DatasetInfo(
        dataset=dataset,
        num_examples=num_examples,
        num_classes=len(class_names),
        class_names=class_names,
        image_size=image_size,
    )
