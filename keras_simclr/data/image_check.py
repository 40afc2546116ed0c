"""Finding the image files that cannot be decoded, before any training.

`load_image_folder` (both implementations: tf.data, and Pillow with
`in_memory=True`) checks every file of a split with
`find_bad_images` before they build anything: a corrupt file is named, with
its path and the reason, at load time, instead of failing the first epoch
(or the final evaluation) with a decoder error that names no file.

The check decodes every file with Pillow in a thread pool (Pillow releases
the GIL while it reads and decodes):

- JPEG: decoded in Pillow's draft mode at 1/8 scale. libjpeg still reads
  and entropy-decodes the whole stream (only the inverse DCT, upsampling
  and colour conversion shrink), so a file cut short anywhere is found, at
  about half a full decode's CPU time from 224 px up (at 32 px, opening the
  file costs as much as decoding it). The marker segments are then walked
  as libjpeg reads them, to the end-of-image marker: TensorFlow's decoder
  fails on a segment that runs past the end of the file, which Pillow
  accepts.
- PNG: the chunks are walked (each must fit in the file, the critical
  chunks' CRCs must match, `IEND` must be reached, as libpng requires) and
  the image is fully decoded.
- GIF, BMP, WebP: fully decoded.
- Any other format (TIFF, ...) is reported: `tf.io.decode_image` reads
  only JPEG, PNG, GIF, BMP and WebP, and both loaders read the same files.

The check also reads each file's EXIF orientation (`inspect_images`), which
the `tf.data` implementation applies (Pillow applies it as it decodes).

Truncated files are found by the structure walks whatever the value of
Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` (which this module never
changes), and by the decode itself while it is `False`, its default.

This module imports neither TensorFlow nor Keras.
"""

import io
import os
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

from keras_simclr.data.image_decoding import default_threads
from keras_simclr.data.image_decoding import exif_orientation

# How many bad files an error or warning names; the rest are counted.
MAX_LISTED_BAD_IMAGES = 20

# Pillow's names of the formats tf.io.decode_image also reads (MPO: a JPEG
# with extra pictures after its end, as some cameras write).
_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "GIF": "GIF", "BMP": "BMP", "WEBP": "WebP"}
_FORMAT_NAMES = "JPEG, PNG, GIF, BMP or WebP"

_JPEG_EOI = 0xD9
_JPEG_SOI = 0xD8
_JPEG_STANDALONE = {0x01}  # TEM (restart markers are skipped with the entropy-coded data)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BadImagesError(ValueError):
    """Image files of a split that cannot be decoded.

    Raised by `load_image_folder` (either implementation; unless
    `skip_bad_images=True`) before anything is built. The message names the
    first `MAX_LISTED_BAD_IMAGES` files with their reasons on one line and
    counts the rest.

    Attributes:
        bad_images: every bad file, as `(path, reason)` pairs in the
            loader's sorted class-then-file order.
        num_images: how many image files the split holds, bad ones included.
        folder: the split's folder.
    """

    def __init__(self, bad_images, num_images, folder):
        self.bad_images = list(bad_images)
        self.num_images = int(num_images)
        self.folder = os.fspath(folder)
        super().__init__(bad_images_message(self.bad_images, self.num_images, self.folder))

    def __reduce__(self):  # pickles (e.g. across processes) with its attributes
        return type(self), (self.bad_images, self.num_images, self.folder)


class BadImagesWarning(UserWarning):
    """Bad image files were left out of a split (`skip_bad_images=True`)."""


def _list_bad(bad_images):
    listed = "; ".join(
        f"{path!r} ({reason})" for path, reason in bad_images[:MAX_LISTED_BAD_IMAGES]
    )
    more = len(bad_images) - MAX_LISTED_BAD_IMAGES
    return listed + (f"; and {more} more" if more > 0 else "")


def bad_images_message(bad_images, num_images, folder, skipped=False):
    """The one-line message of `BadImagesError`, or of the warning when the
    bad files are `skipped`."""
    count = f"{len(bad_images)} of {num_images} image files of {os.fspath(folder)!r}"
    if skipped:
        return (
            f"Leaving out {count} that cannot be decoded (skip_bad_images=True): "
            f"{_list_bad(bad_images)}."
        )
    if len(bad_images) >= num_images:
        return (
            f"None of the {num_images} image files of {os.fspath(folder)!r} can be "
            f"decoded: {_list_bad(bad_images)}."
        )
    return (
        f"{count} cannot be decoded: {_list_bad(bad_images)}. Replace or remove "
        "them, or pass skip_bad_images=True (--skip_bad_images) to leave them out."
    )


def warn_bad_images(bad_images, num_images, folder):
    """Emits the one `BadImagesWarning` of a split whose bad files were left
    out, attributed to the first caller outside `keras_simclr.data`."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        bad_images_message(bad_images, num_images, folder, skipped=True),
        BadImagesWarning,
        stacklevel=level,
    )


def _next_jpeg_marker(data, position):
    """`(start, code, end)` of the next JPEG marker at or after `position`
    as libjpeg's readers find one, or `None` at the end of `data`: any
    number of 0xFF fill bytes, then a code that is neither a stuffed zero nor
    a restart marker (both belong to entropy-coded data, as do other bytes,
    which libjpeg skips)."""
    size = len(data)
    while True:
        start = data.find(b"\xff", position)
        if start < 0:
            return None
        end = start + 1
        while end < size and data[end] == 0xFF:
            end += 1
        if end >= size:
            return None
        code = data[end]
        if code != 0x00 and not 0xD0 <= code <= 0xD7:
            return start, code, end + 1
        position = end + 1


def _jpeg_structure_problem(data):
    """Why libjpeg (in TensorFlow) would stop short of the end-of-image
    marker, or `None`: the marker segments, entropy-coded data skipped, are
    followed from the start-of-image to the first end-of-image marker."""
    size = len(data)
    # Stuffed zeros (0xFF 0x00) are most of the 0xFF bytes of entropy-coded
    # data; markers are looked for in a copy with them blanked (same length,
    # same offsets), segment lengths read from the file itself.
    scan = data.replace(b"\xff\x00", b"\x00\x00")
    position = 2  # after the start-of-image marker Pillow has read
    while True:
        marker = _next_jpeg_marker(scan, position)
        if marker is None:
            return "truncated: the file ends before the JPEG end-of-image marker"
        start, code, position = marker
        if code == _JPEG_EOI:
            return None
        if code == _JPEG_SOI:
            return f"corrupt JPEG: a second start-of-image marker at byte {start}"
        if code in _JPEG_STANDALONE:
            continue
        if position + 2 > size:
            return "truncated: the file ends inside a JPEG marker segment"
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2:
            return f"corrupt JPEG: a marker segment of length {length} at byte {start}"
        if position + length > size:
            return (
                f"truncated or corrupt JPEG: the marker segment at byte {start} "
                f"({length} bytes) runs past the end of the file ({size} bytes)"
            )
        position += length


def _png_structure_problem(data):
    """Why libpng would fail on the chunk structure, or `None`: every chunk
    fits in the file, the critical chunks' CRCs match and `IEND` is reached."""
    size = len(data)
    position = len(_PNG_SIGNATURE)
    while True:
        if position + 8 > size:
            return "truncated: the file ends before the PNG IEND chunk"
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > size:
            return (
                f"truncated: the PNG chunk {kind!r} at byte {position} runs past the "
                f"end of the file ({size} bytes)"
            )
        # Critical chunks (upper-case first letter) must match their CRC;
        # libpng only warns about the others.
        if kind[:1].isupper():
            crc = int.from_bytes(data[end - 4 : end], "big")
            if zlib.crc32(data[position + 4 : end - 4]) != crc:
                return f"corrupt PNG: CRC mismatch in the {kind.decode('latin-1')!r} chunk"
        if kind == b"IEND":
            return None
        position = end


def _error_reason(error):
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return f"not a {_FORMAT_NAMES} image: Pillow cannot identify it"
    text = str(error).strip()
    if "truncated" in text.lower():
        return f"truncated: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def inspect_image(path):
    """`(reason, orientation)` of the image file at `path`.

    `reason`: why it cannot be decoded (see the module docstring for what is
    checked per format), or `None` if it can. `orientation`: its EXIF
    orientation, 1 (upright, also for a bad file or one without EXIF) to 8.
    """
    from PIL import Image

    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        return f"cannot be read: {error.strerror or error}", 1
    if not data:
        return "empty file", 1
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = _FORMATS.get(image.format)
            if kind is None:
                return (
                    f"a {image.format} image, not one of the formats both loaders "
                    f"read: {_FORMAT_NAMES}"
                ), 1
            if kind == "JPEG":
                # Decode at the smallest scale libjpeg offers (1/8 per side).
                image.draft(None, (1, 1))
            image.load()
            # After load(): a PNG's eXIf chunk may follow its pixels.
            orientation = exif_orientation(image)
    except Exception as error:  # noqa: BLE001 - any failure makes the file bad
        return _error_reason(error), 1
    if kind == "JPEG":
        return _jpeg_structure_problem(data), orientation
    if kind == "PNG":
        return _png_structure_problem(data), orientation
    return None, orientation


def check_image(path):
    """Why the image file at `path` cannot be decoded, or `None` if it can.

    See the module docstring for what is checked per format.

    Args:
        path: path of an image file.

    Returns:
        `None`, or a short reason, e.g. `"truncated: image file is truncated
        (3 bytes not processed)"`.
    """
    return inspect_image(path)[0]


_MAX_CHUNK = 64


def inspect_images(paths, num_threads=None):
    """Checks image files and reads their EXIF orientations, in a thread pool.

    Args:
        paths: image file paths.
        num_threads: checking threads; `None`: one per CPU.

    Returns:
        `(bad, orientations)`: `bad` as `find_bad_images` returns it;
        `orientations` the EXIF orientation of every file (1 to 8; 1 for the
        bad ones), a list in the order of `paths`.
    """
    paths = [os.fspath(path) for path in paths]
    threads = int(num_threads or default_threads())
    if threads <= 1 or len(paths) <= 1:
        results = [inspect_image(path) for path in paths]
    else:
        # Several files per task (a task costs about as much as checking a
        # small JPEG), and at least four tasks per thread.
        size = max(1, min(_MAX_CHUNK, len(paths) // (4 * threads)))
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        with ThreadPoolExecutor(min(threads, len(chunks))) as pool:
            results = [
                result
                for chunk in pool.map(lambda chunk: [inspect_image(p) for p in chunk], chunks)
                for result in chunk
            ]
    bad = [(path, reason) for path, (reason, _) in zip(paths, results) if reason is not None]
    return bad, [orientation for _, orientation in results]


def find_bad_images(paths, num_threads=None):
    """Checks image files with `check_image`, in a thread pool.

    Args:
        paths: image file paths.
        num_threads: checking threads; `None`: one per CPU.

    Returns:
        `[(path, reason), ...]` for every file that cannot be decoded, in the
        order of `paths`; empty when all can.

    Example:

    ```python
    bad = find_bad_images(glob.glob("/data/cifar10/train/*/*.jpg"))
    for path, reason in bad:
        print(path, reason)
    ```
    """
    return inspect_images(paths, num_threads=num_threads)[0]
