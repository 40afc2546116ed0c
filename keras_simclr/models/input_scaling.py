"""Per-channel scaling of [0, 1] images into what a pretrained backbone expects."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_simclr")
class InputScaling(keras.layers.Layer):
    """Maps RGB images in [0, 1] to a backbone's input: `x[..., order] * scale + offset`.

    Our pipeline feeds float images in [0, 1]; a pretrained backbone saw
    images preprocessed its own way (`keras.applications.resnet`'s "caffe"
    style: BGR, 0-255 minus the ImageNet mean; "torch" style: ImageNet mean
    and std; "tf" style: [-1, 1]; a keras-hub preset's `ImageConverter`:
    `pixels * scale + offset`). Every one of these is a per-channel affine
    map, possibly after reversing the channels, so one layer holds any of
    them and the encoder that contains it still takes [0, 1] images. It has
    no weights, so fine-tuning cannot move it.

    Args:
        scale: one number, or one per channel (3), multiplying the [0, 1]
            image after the channel reordering.
        offset: one number, or one per channel (3), added after `scale`.
        reverse_channels: `True` feeds the backbone BGR (caffe style).
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    ```python
    # keras.applications.resnet.preprocess_input, for images in [0, 1]:
    layer = InputScaling(scale=255.0, offset=[-103.939, -116.779, -123.68],
                         reverse_channels=True)
    ```
    """

    def __init__(self, scale=1.0, offset=0.0, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        self.scale = _per_channel("scale", scale)
        self.offset = _per_channel("offset", offset)
        self.reverse_channels = bool(reverse_channels)

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.reverse_channels:
            images = ops.flip(images, axis=-1)
        scale = ops.convert_to_tensor(self.scale, dtype=self.compute_dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        return images * scale + offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale": self.scale,
                "offset": self.offset,
                "reverse_channels": self.reverse_channels,
            }
        )
        return config


def _per_channel(name, value):
    values = np.asarray(value, dtype="float64").ravel()
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all(np.isfinite(values)):
        raise ValueError(
            f"{name} must be one finite number or 3 (one per channel). Received: {name}={value}"
        )
    return [float(v) for v in values]
