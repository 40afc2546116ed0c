"""Labelled image datasets for pretraining and evaluation.

One interface, `ImageDataset`, with two implementations: a `tf.data`
pipeline (`load_image_folder`, `load_tfds`) and NumPy arrays in host memory,
TensorFlow never imported (`load_image_folder(..., in_memory=True)`,
`load_arrays`, `ImageDataset.in_memory()`), made for the JAX backend. Either
gives `training_batches` for `model.fit`, `evaluation_batches` for the kNN
and linear evaluations, `take`, `cache`, `arrays` and balanced labelled
`subset`s (`labeled_subset` on plain labels).

An image folder's files are all checked before anything is built: files
that cannot be decoded raise `BadImagesError` naming each one, or with
`skip_bad_images=True` are left out with one `BadImagesWarning`.

The names are imported on first access, so `import keras_simclr.data` does
not import TensorFlow; the `tf.data` loaders import it when first used.

Example:

```python
from keras_simclr import data

train = data.load_image_folder("/data/cifar10", "train").cache()
test = data.load_image_folder("/data/cifar10", "test", image_size=train.image_size).cache()
model.fit(train.training_batches(512, seed=0), epochs=800, shuffle=False)
```
"""

import importlib

# name -> submodule that defines it.
_EXPORTS = {
    "BadImagesError": "image_check",
    "BadImagesWarning": "image_check",
    "ImageDataset": "image_dataset",
    "ImageFiles": "image_files",
    "find_images": "image_files",
    "image_folder_size": "image_folder",
    "labeled_subset": "label_fraction",
    "load_arrays": "array_image_dataset",
    "load_image_folder": "image_folder",
    "load_tfds": "tfds_dataset",
}

__all__ = [
    "BadImagesError",
    "BadImagesWarning",
    "ImageDataset",
    "ImageFiles",
    "find_images",
    "image_folder_size",
    "labeled_subset",
    "load_arrays",
    "load_image_folder",
    "load_tfds",
]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_simclr.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_simclr.data.{module}"), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
