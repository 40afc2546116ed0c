"""Pictures of a run: augmented views and training curves (matplotlib).

Every function builds a `matplotlib.figure.Figure` directly, never through
`pyplot`'s global state or `matplotlib.use`: the command line draws without
a display, and a notebook keeps its own backend. In Jupyter (Colab
included) a returned figure shows inline as the cell's value.

- `augmentation_grid(images, augmenter)`: image / view a / view b rows,
  drawn by the run's own augmenter; `save_augmentations(path, ...)`.
- `training_curves(history)`: loss, contrastive accuracy and kNN accuracy
  per epoch; `save_training_curves(path, history)`.
- `TrainingCurves(path)`: a callback that rewrites the curves' PNG after
  every epoch.

PNGs are written atomically (a temporary file, then a rename): a run killed
mid-write leaves the previous picture, never a broken one.

The names are imported on first access: `import keras_simclr.plot` imports
neither matplotlib nor Keras.

Example:

```python
import keras_simclr as ks

ks.plot.augmentation_grid(images[:8], recipe.augmenter)  # shows inline
history = recipe.model.fit(batches, epochs=10, callbacks=[knn_monitor])
ks.plot.training_curves(history)
```
"""

import importlib

# name -> submodule that defines it.
_EXPORTS = {
    "TrainingCurves": "training_curves_callback",
    "augmentation_grid": "augmentation_grid",
    "save_augmentations": "augmentation_grid",
    "save_figure": "save_figure",
    "save_training_curves": "training_curves",
    "training_curves": "training_curves",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_simclr.plot' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_simclr.plot.{module}"), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
