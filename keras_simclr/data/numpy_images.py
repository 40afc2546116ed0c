"""Temporary: the old names of this module, for callers still moving over.

To be deleted with issue 16: use `load_image_folder(..., in_memory=True)`,
`ImageDataset.training_batches`, `keras_simclr.data.shuffled_batches` and
`keras_simclr.data.image_decoding` instead.
"""

from keras_simclr.data.image_decoding import decode_images  # noqa: F401
from keras_simclr.data.image_folder import load_image_folder
from keras_simclr.data.shuffled_batches import ShuffledBatches  # noqa: F401


def load_numpy_image_folder(root, split, image_size=None, num_threads=None, skip_bad_images=False):
    """`load_image_folder(root, split, ..., in_memory=True)`."""
    return load_image_folder(
        root, split, image_size=image_size, skip_bad_images=skip_bad_images, in_memory=True,
        num_threads=num_threads,
    )
