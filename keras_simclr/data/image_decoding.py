"""Decoding images with Pillow into uint8 NumPy arrays, without TensorFlow.

The decoder of the NumPy dataset implementation (`load_image_folder(...,
in_memory=True)`): Pillow, in a thread pool (it releases the GIL while it
decodes). Pillow and TensorFlow both decode JPEGs with libjpeg-turbo; Pillow
uses its accurate integer IDCT, the same pixels as
`tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`.

A file's EXIF orientation (tag 0x0112, as cameras and phones write it) is
applied: the image comes out upright, as photo viewers show it, and its size
is the upright one. The `tf.data` implementation applies the same rotation
or flip (`keras_simclr.data.tf_image_dataset`), from the orientation
`keras_simclr.data.image_check` reads while it checks the files.

This module imports neither TensorFlow nor Keras.
"""

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_simclr.data.resizing import resize_image_array
from keras_simclr.data.resizing import standardize_image_size

# The EXIF tag of the orientation.
EXIF_ORIENTATION_TAG = 0x0112

# The orientations (EXIF values 2 to 8) that swap height and width.
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def exif_orientation(image):
    """The EXIF orientation of an open Pillow image: 1 (upright, also when it
    has none or an invalid one) to 8."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels as stored
        return 1
    return int(orientation) if orientation in range(1, 9) else 1


def upright(image):
    """The Pillow `image` with its EXIF orientation applied (itself when upright)."""
    from PIL import ImageOps

    if exif_orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)


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
            array = np.asarray(upright(image).convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(
            f"Cannot decode the image {_describe(source, index)} ({error})."
        ) from error
    if image_size is not None:
        array = resize_image_array(array, image_size)
    return array


def image_shape(source, index=0):
    """`(H, W)` of an image (a path or encoded bytes), from its header only.

    The upright size: height and width swap for the EXIF orientations that
    rotate by 90 degrees.

    Raises:
        ValueError: Pillow cannot open it (`index` names it in the message).
    """
    try:
        with _open(source) as image:
            width, height = image.size
            if exif_orientation(image) in TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(
            f"Cannot decode the image {_describe(source, index)} ({error})."
        ) from error
    return int(height), int(width)


def default_threads():
    """The default number of decoding and checking threads: one per CPU."""
    return os.cpu_count() or 1


def decode_images(sources, image_size=None, num_threads=None):
    """Decodes images into one uint8 `(N, H, W, 3)` array with Pillow.

    Decoding runs in a thread pool and writes straight into the preallocated
    result. Grayscale, palette and RGBA images are read as RGB; the EXIF
    orientation is applied; images not of `image_size` are resized
    (`keras_simclr.data.resizing`).

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
        image_size = image_shape(sources[0])
    images = np.empty((len(sources),) + tuple(image_size) + (3,), np.uint8)

    def store(index):
        images[index] = _decode_one(sources[index], index, image_size)

    threads = int(num_threads or default_threads())
    if threads <= 1 or len(sources) == 1:
        for index in range(len(sources)):
            store(index)
    else:
        with ThreadPoolExecutor(threads) as pool:
            # list(): re-raises the first decoding error here.
            list(pool.map(store, range(len(sources))))
    return images
