"""`find_images`: every image file under a folder, in any layout.

The folder rules of unlabelled data (`load_image_folder(root)` without a
split, `keras-simclr pretrain --image_folder` on any folder, `keras-simclr
embed`):

- every file under `root`, at any depth, whose extension is one of
  `IMAGE_FILE_EXTENSIONS` (case-insensitive: the formats both decoders read,
  `tf.io.decode_image` and Pillow); symlinked folders are followed (each
  real folder once, so a link cycle ends);
- hidden files and folders (names starting with `.`) are skipped;
- files are sorted by their path relative to `root` (`/`-separated), so
  every listing of the same folder gives the same order on every machine;
- labels exist only where the layout has them: when every image lies
  exactly one folder below `root` (`ROOT/<class>/<file>`), its label is
  that folder's index among the sorted class folders; otherwise there are
  none.

This module imports neither TensorFlow nor Keras.
"""

import collections
import os
from typing import NamedTuple

import numpy as np

# The extensions of the files `find_images` lists (case-insensitive): the
# formats both `tf.io.decode_image` and Pillow decode.
IMAGE_FILE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# How many of the other extensions the no-images error names.
_LISTED_OTHER_KINDS = 5


class ImageFiles(NamedTuple):
    """The image files of a folder, as `find_images` lists them.

    Attributes:
        root: the folder, as given (a `str`).
        paths: absolute path of every image, sorted by relative path.
        relative_paths: each path relative to `root`, `/`-separated.
        labels: int32 `(N,)` class indices when every image lies in
            `ROOT/<class>/`, else `None`.
        class_names: the sorted class folders when there are labels, else
            `None`.
    """

    root: str
    paths: list
    relative_paths: list
    labels: np.ndarray
    class_names: list

    @property
    def num_images(self):
        """How many image files were found."""
        return len(self.paths)


def is_image_file(name):
    """Whether a file name has one of `IMAGE_FILE_EXTENSIONS` (any case)."""
    return name.lower().endswith(IMAGE_FILE_EXTENSIONS)


def _walk(root):
    """`(relative_paths, other_kinds)`: the image files under `root` and a
    count of the other files by extension; hidden entries skipped, symlinked
    folders followed once per real folder."""
    images, other_kinds = [], collections.Counter()
    seen = set()
    for folder, folders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back into a folder already walked
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        relative_folder = os.path.relpath(folder, root)
        for name in files:
            if name.startswith("."):
                continue
            if is_image_file(name):
                relative = name if relative_folder == "." else os.path.join(relative_folder, name)
                images.append(relative.replace(os.sep, "/"))
            else:
                other_kinds[os.path.splitext(name)[1].lower() or "(no extension)"] += 1
    return sorted(images), other_kinds


def _no_images_error(root, other_kinds):
    total = sum(other_kinds.values())
    if total:
        kinds = ", ".join(
            f"{count} {kind}" for kind, count in other_kinds.most_common(_LISTED_OTHER_KINDS)
        )
        more = len(other_kinds) - _LISTED_OTHER_KINDS
        seen = (
            f"it holds {total} other files ({kinds}{f', ...{more} more kinds' if more > 0 else ''})"
        )
    else:
        seen = "it holds no files"
    return ValueError(
        f"No image files ({', '.join(IMAGE_FILE_EXTENSIONS)}, any case) under {root!r} "
        f"at any depth; {seen}. Received: root={root!r}"
    )


def find_images(root):
    """Lists every image file under `root`, in any layout.

    See the module docstring for the rules: recursive, the extensions of
    `IMAGE_FILE_EXTENSIONS` in any case, hidden entries skipped, sorted by
    relative path, labels only for a `ROOT/<class>/<file>` layout. The files
    are listed, not opened: `keras_simclr.data.image_check` finds those that
    cannot be decoded.

    Args:
        root: a folder of images: flat, nested, or one sub-folder per class.

    Returns:
        an `ImageFiles`.

    Raises:
        FileNotFoundError: `root` does not exist or is not a folder.
        ValueError: no image file lies under `root` (the message counts the
            other files it holds, by extension).

    Example:

    ```python
    files = find_images("/photos")
    files.relative_paths[:2]  # ['2024/beach/001.jpg', '2024/beach/002.JPG']
    files.labels  # None: the images are not all one folder deep
    ```
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        raise FileNotFoundError(
            f"The image folder {what}. Expected a folder of images (any layout). "
            f"Received: root={root!r}"
        )
    relative_paths, other_kinds = _walk(root)
    if not relative_paths:
        raise _no_images_error(root, other_kinds)
    base = os.path.abspath(root)
    paths = [os.path.join(base, *relative.split("/")) for relative in relative_paths]
    labels = class_names = None
    parts = [relative.split("/") for relative in relative_paths]
    if all(len(part) == 2 for part in parts):
        class_names = sorted({part[0] for part in parts})
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.array([index[part[0]] for part in parts], np.int32)
    return ImageFiles(root, paths, relative_paths, labels, class_names)
