"""Input pipelines: tfds datasets, image folders and arrays as uint8 tf.data.

Every loader returns a `DatasetInfo` (unbatched `(uint8 image, int32 label)`
elements plus their count, classes and image size); `pretraining_dataset`
and `evaluation_dataset` turn it into batches; `subset_dataset` draws a
per-class balanced labelled fraction.

Uses TensorFlow (tf.data); `import keras_simclr` loads it on first access.
"""

from keras_simclr.data.array_dataset import load_arrays
from keras_simclr.data.dataset_info import DEFAULT_CACHE_LIMIT_BYTES
from keras_simclr.data.dataset_info import DatasetInfo
from keras_simclr.data.image_folder import load_image_folder
from keras_simclr.data.label_fraction import dataset_labels
from keras_simclr.data.label_fraction import labeled_subset
from keras_simclr.data.label_fraction import select_examples
from keras_simclr.data.label_fraction import subset_dataset
from keras_simclr.data.pipelines import dataset_arrays
from keras_simclr.data.pipelines import evaluation_dataset
from keras_simclr.data.pipelines import pretraining_dataset
from keras_simclr.data.pipelines import take_examples
from keras_simclr.data.tfds_dataset import load_tfds

__all__ = [
    "DEFAULT_CACHE_LIMIT_BYTES",
    "DatasetInfo",
    "dataset_arrays",
    "dataset_labels",
    "evaluation_dataset",
    "labeled_subset",
    "load_arrays",
    "load_image_folder",
    "load_tfds",
    "pretraining_dataset",
    "select_examples",
    "subset_dataset",
    "take_examples",
]
