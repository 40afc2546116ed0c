"""Decoding images with Pillow into uint8 NumPy arrays, without TensorFlow.

The decoder of the NumPy dataset implementation (`load_image_folder(...,
in_memory=True)`): Pillow, in a thread pool (it releases the GIL while it
decodes). Pillow and TensorFlow both decode JPEGs with libjpeg-turbo; Pillow
uses its accurate integer IDCT, the same pixels as
`tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`.

This module imports neither TensorFlow nor Keras.
"""

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_simclr.data.resizing import resize_image_array
from keras_simclr.data.resizing import standardize_image_size


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
        raise ValueError(
            f"Cannot decode the image {_describe(source, index)} ({error})."
        ) from error
    if image_size is not None:
        array = resize_image_array(array, image_size)
    return array


def image_shape(source, index=0):
    """`(H, W)` of an image (a path or encoded bytes), from its header only.

    Raises:
        ValueError: Pillow cannot open it (`index` names it in the message).
    """
    try:
        with _open(source) as image:
            width, height = image.size
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
    result. Grayscale, palette and RGBA images are read as RGB; images not of
    `image_size` are resized (`keras_simclr.data.resizing`).

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
