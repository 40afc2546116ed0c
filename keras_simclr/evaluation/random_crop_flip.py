"""The evaluations' training augmentation: a padded random crop and a flip."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomCropFlip(keras.layers.Layer):
    """Per-image random crop with zero padding and horizontal flip.

    In training, each image is zero-padded by `padding` pixels on every side,
    a window of the original size is cut at an offset drawn per image, and
    the window is mirrored left-right with probability 1/2 (drawn per image).
    In inference it returns the images unchanged. The standard CIFAR
    augmentation of supervised training, used by `linear_evaluation` and
    `fine_tune`.

    Its own layer, not `ZeroPadding2D` + `keras.layers.RandomCrop` +
    `RandomFlip`: Keras's `RandomCrop` draws one offset per batch, and
    `keras_simclr.augment.RandomResizedCrop` draws a scale and an aspect
    ratio and resamples; neither cuts a window per image from the padded
    image. Written in `keras.ops`: it runs in the compiled step on every
    backend, from one `keras.random.SeedGenerator` (three draws per call:
    top offsets, left offsets, flips).

    Args:
        padding: zero padding on every side, in pixels; offsets are drawn in
            `[0, 2 * padding]`.
        seed: integer seed of the layer's `SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer` (e.g. `name`).

    Example:

    ```python
    layer = RandomCropFlip(padding=4, seed=0)
    augmented = layer(images, training=True)  # same shape as images
    ```

    References:
        - He et al., Deep Residual Learning for Image Recognition, CVPR
          2016, section 4.2 (4-pixel padding, 32x32 crop, flip on CIFAR).
    """

    def __init__(self, padding=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        pad = self.padding
        padded = ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        top = keras.random.randint(
            (batch,), 0, 2 * pad + 1, dtype="int32", seed=self.seed_generator
        )
        left = keras.random.randint(
            (batch,), 0, 2 * pad + 1, dtype="int32", seed=self.seed_generator
        )
        flip = keras.random.uniform((batch,), seed=self.seed_generator) < 0.5
        rows = top[:, None] + ops.arange(height, dtype="int32")[None, :]
        cols = left[:, None] + ops.arange(width, dtype="int32")[None, :]
        # Reading the window's columns backwards mirrors it.
        cols = ops.where(flip[:, None], ops.flip(cols, axis=1), cols)
        out = ops.take_along_axis(
            padded,
            ops.broadcast_to(rows[:, :, None, None], (batch, height, width + 2 * pad, channels)),
            axis=1,
        )
        return ops.take_along_axis(
            out,
            ops.broadcast_to(cols[:, None, :, None], (batch, height, width, channels)),
            axis=2,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "seed": self.seed})
        return config


# `.keras` files written before the class was public name it `_RandomCropFlip`.
keras.saving.get_custom_objects()["keras_simclr>_RandomCropFlip"] = RandomCropFlip
