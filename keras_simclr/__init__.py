"""keras-simclr: self-supervised contrastive pretraining for Keras 3.

The core (augmentation layers, losses, optimizers, models) is written in
`keras.ops` and imports without TensorFlow, so it runs on the JAX backend too.
`keras_simclr.data`, `keras_simclr.export` and `keras_simclr.cli` use
TensorFlow (tf.data, SavedModel) and are imported on first access.
"""

import importlib

from keras_simclr import augment
from keras_simclr import distribute
from keras_simclr import evaluation
from keras_simclr import losses
from keras_simclr import models
from keras_simclr import optimizers

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("data", "export", "cli")

__all__ = [
    "augment",
    "cli",
    "data",
    "distribute",
    "evaluation",
    "export",
    "losses",
    "models",
    "optimizers",
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_simclr.{name}")
    raise AttributeError(f"module 'keras_simclr' has no attribute {name!r}")
