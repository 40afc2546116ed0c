"""Input pipelines: tfds datasets, image folders and arrays as uint8 tf.data,
and a TensorFlow-free NumPy path for the JAX backend.

Every TensorFlow loader returns a `DatasetInfo` (unbatched `(uint8 image,
int32 label)` elements plus their count, classes and image size);
`pretraining_dataset` and `evaluation_dataset` turn it into batches;
`subset_dataset` draws a per-class balanced labelled fraction.

`load_numpy_image_folder` / `decode_images` decode with Pillow into one uint8
array (`NumpyImages`) and `ShuffledBatches` feeds it to `model.fit` without
TensorFlow.

Both image-folder loaders check every file of a split before they build
anything (`find_bad_images`): files that cannot be decoded raise
`BadImagesError` naming each one, or with `skip_bad_images=True` are left out
with one `BadImagesWarning`.

The names are imported on first access, so `import keras_simclr.data` (and
`keras_simclr.data.numpy_images`) does not import TensorFlow; the tf.data
loaders import it when first used.
"""

import importlib

# name -> submodule that defines it.
_EXPORTS = {
    "BadImagesError": "image_check",
    "BadImagesWarning": "image_check",
    "DEFAULT_CACHE_LIMIT_BYTES": "dataset_info",
    "DatasetInfo": "dataset_info",
    "NumpyImages": "numpy_images",
    "ShuffledBatches": "numpy_images",
    "dataset_arrays": "pipelines",
    "dataset_labels": "label_fraction",
    "decode_images": "numpy_images",
    "check_image": "image_check",
    "evaluation_dataset": "pipelines",
    "find_bad_images": "image_check",
    "image_folder_size": "numpy_images",
    "labeled_subset": "label_fraction",
    "load_arrays": "array_dataset",
    "load_image_folder": "image_folder",
    "load_numpy_image_folder": "numpy_images",
    "load_tfds": "tfds_dataset",
    "pretraining_dataset": "pipelines",
    "resize_image_array": "numpy_images",
    "select_examples": "label_fraction",
    "subset_dataset": "label_fraction",
    "take_examples": "pipelines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_simclr.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_simclr.data.{module}"), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
