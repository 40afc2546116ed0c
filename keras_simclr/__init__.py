"""keras-simclr: self-supervised contrastive pretraining for Keras 3.

The core (augmentation layers, losses, optimizers, models) is written in
`keras.ops` and imports without TensorFlow, so it runs on the JAX backend too.
`keras_simclr.data`, `keras_simclr.export` and `keras_simclr.cli` use
TensorFlow (tf.data, SavedModel) and are imported on first access.

Importing it before Keras turns on TensorFlow's oneDNN CPU kernels where
TensorFlow leaves them off (see `keras_simclr.onednn`).
"""

import importlib

from keras_simclr import onednn

# Before `keras` imports TensorFlow: TensorFlow reads this once, at import.
onednn.enable_onednn_by_default()

from keras_simclr import augment  # noqa: E402
from keras_simclr import distribute  # noqa: E402
from keras_simclr import evaluation  # noqa: E402
from keras_simclr import losses  # noqa: E402
from keras_simclr import models  # noqa: E402
from keras_simclr import optimizers  # noqa: E402

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
    "onednn",
    "optimizers",
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_simclr.{name}")
    raise AttributeError(f"module 'keras_simclr' has no attribute {name!r}")
