"""keras-simclr: self-supervised contrastive pretraining for Keras 3.

The core (augmentation layers, losses, optimizers, models) is written in
`keras.ops` and imports without TensorFlow, so it runs on the JAX backend too.
`keras_simclr.data`, `keras_simclr.export` and `keras_simclr.cli` use
TensorFlow (tf.data, SavedModel).

Importing `keras_simclr` has no side effects and imports neither Keras nor
TensorFlow: each subpackage is imported on first access
(`keras_simclr.models`, `from keras_simclr import losses`). That leaves time
for `keras_simclr.enable_onednn()`, which turns on TensorFlow's oneDNN CPU
kernels and must run before TensorFlow is imported (see
`keras_simclr.onednn`).
"""

import importlib

from keras_simclr.onednn import enable_onednn

__version__ = "0.1.0"

_SUBMODULES = (
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
    "plot",
    "recipes",
)

# function name -> the module that defines it, imported on first access too.
_FUNCTIONS = {"embed": "embedding"}

__all__ = ["enable_onednn", *_FUNCTIONS, *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_simclr.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"keras_simclr.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'keras_simclr' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_FUNCTIONS))
