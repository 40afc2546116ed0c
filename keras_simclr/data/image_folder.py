"""Labelled images from a folder laid out as `ROOT/<split>/<class>/*.jpg`."""

import tensorflow as tf

from keras_simclr.data.dataset_info import DatasetInfo
from keras_simclr.data.image_utils import resize_image
from keras_simclr.data.image_utils import standardize_image_size
from keras_simclr.data.numpy_images import _image_shape
from keras_simclr.data.numpy_images import list_checked_image_folder


def _load_image(path, image_size):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return resize_image(image, image_size)


def load_image_folder(root, split, image_size=None, skip_bad_images=False):
    """Reads the labelled images of `root/<split>/<class>/*.{jpg,jpeg,png}`.

    The folder is listed and checked by `list_checked_image_folder`, the
    function the TensorFlow-free `load_numpy_image_folder` uses too, so both
    loaders read the same files in the same order by construction. The
    classes are named from the class folders of *every* split, so a label
    means the same class in `train` and `test` even when a split lacks a
    class; the files are listed in a fixed order, shuffled once with a
    per-split seed (the order `tfds.ImageFolder` gives), so the first
    examples (`take_examples`) mix the classes and every pass yields the
    same order; the labels are known without reading any image.

    Every file of the split is checked (decoded with Pillow, see
    `keras_simclr.data.image_check`) before the dataset is built, so a
    corrupt, truncated or non-image file is named here rather than failing
    an epoch, or the final evaluation, with a TensorFlow error that names no
    file. Such files raise `BadImagesError`, which names each one and why,
    unless `skip_bad_images=True` leaves them out (with one
    `BadImagesWarning` naming them).

    The dataset decodes each file with `tf.io.decode_image` (JPEG, PNG, GIF,
    BMP, WebP; grayscale and RGBA read as RGB, a GIF's first frame) and keeps
    it uint8 at its stored size when that is `image_size`, so such images
    pass through exactly; the others are resized (bilinear, antialiased).
    Call `.cache()` on the result to decode only once.

    Args:
        root: folder holding one sub-folder per split.
        split: the split's sub-folder, e.g. `"train"`.
        image_size: `(H, W)` or an int; `None`: the size of the first image
            that can be decoded (first class folder, first file, in sorted
            order).
        skip_bad_images: leave out the files that cannot be decoded (one
            warning names them) instead of raising; `num_examples` is then
            that much smaller.

    Returns:
        a `DatasetInfo` of `(uint8 (H, W, 3) image, int32 label)`, labels in
        sorted class-name order.

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
    paths, labels, class_names, first = list_checked_image_folder(
        root, split, skip_bad_images=skip_bad_images
    )
    if image_size is None:
        image_size = _image_shape(first)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(
        lambda path, label: (_load_image(path, image_size), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return DatasetInfo(
        dataset=dataset,
        num_examples=len(paths),
        num_classes=len(class_names),
        class_names=class_names,
        image_size=image_size,
        labels=labels,
    )
