"""Input pipelines: tfds datasets, image folders and arrays as uint8 tf.data.

Uses TensorFlow (tf.data); `import keras_simclr` loads it on first access.
"""

from keras_simclr.data.image_dataset import ImageDataset
from keras_simclr.data.image_dataset import dataset_arrays
from keras_simclr.data.image_dataset import evaluation_dataset
from keras_simclr.data.image_dataset import load_arrays
from keras_simclr.data.image_dataset import load_image_folder
from keras_simclr.data.image_dataset import load_tfds
from keras_simclr.data.image_dataset import pretraining_dataset
from keras_simclr.data.image_dataset import take_examples
from keras_simclr.data.label_fraction import labeled_subset
from keras_simclr.data.label_fraction import subset

__all__ = [
    "ImageDataset",
    "dataset_arrays",
    "evaluation_dataset",
    "labeled_subset",
    "load_arrays",
    "load_image_folder",
    "load_tfds",
    "pretraining_dataset",
    "subset",
    "take_examples",
]
