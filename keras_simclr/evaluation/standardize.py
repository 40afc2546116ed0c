"""A fixed per-feature standardization layer."""

import keras
import numpy as np


class Standardize(keras.layers.Layer):
    """Fixed per-feature standardization `(x - mean) * scale` (not trained).

    `linear_evaluation` puts it before its Dense layer to condition the
    optimization, then folds it into the Dense weights. The statistics are
    given, not adapted (unlike `keras.layers.Normalization`, which divides
    by `sqrt(variance)`): `scale` is chosen by the caller, e.g. 0 for
    constant features instead of a huge factor. They are stored as
    non-trainable weights `mean` and `scale`.

    Args:
        mean: per-feature mean, `(F,)`.
        scale: per-feature factor, `(F,)` (usually `1 / std`).
        **kwargs: forwarded to `keras.layers.Layer` (e.g. `name`).

    Example:

    ```python
    layer = Standardize(features.mean(0), 1.0 / features.std(0))
    standardized = layer(features)
    ```
    """

    def __init__(self, mean, scale, **kwargs):
        super().__init__(**kwargs)
        self.mean_value = np.asarray(mean, "float32")
        self.scale_value = np.asarray(scale, "float32")

    def build(self, input_shape):
        shape = self.mean_value.shape
        self.mean = self.add_weight(
            shape=shape,
            initializer=keras.initializers.Constant(self.mean_value),
            trainable=False,
            name="mean",
        )
        self.scale = self.add_weight(
            shape=shape,
            initializer=keras.initializers.Constant(self.scale_value),
            trainable=False,
            name="scale",
        )

    def call(self, inputs):
        return (inputs - self.mean) * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape
