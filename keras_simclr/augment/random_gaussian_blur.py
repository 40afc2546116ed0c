import numpy as np

import keras
from keras import ops

from keras_simclr.augment import image_utils


def _reflect(index, size):
    """Reflect-101 border handling (..., 2, 1 | 0, 1, 2, ... | n-2, ...)."""
    if size == 1:
        return 0
    period = 2 * (size - 1)
    index = abs(index) % period
    return index if index < size else period - index


def _tap_matrices(size, radius):
    """Static (2 * radius + 1, size, size) one-hot matrices: tap t of output i
    reads input reflect(i + t - radius)."""
    taps = np.zeros((2 * radius + 1, size, size), "float32")
    for t in range(2 * radius + 1):
        for i in range(size):
            taps[t, i, _reflect(i + t - radius, size)] += 1.0
    return taps


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomGaussianBlur(keras.layers.Layer):
    """Gaussian blur with a standard deviation drawn per image.

    Per image, with probability `probability`, a separable Gaussian kernel
    with `sigma ~ U(sigma)` blurs the image (reflected borders); images not
    selected are left as they are. The kernel is about 10% of the image
    side, as in SimCLR: `2 * (side // 20) + 1` taps, at least 3. The blur is
    written as two per-image matrix products (built from static tap
    matrices and the per-image weights), so every image gets its own sigma
    in one static-shaped, compiled pass.

    Inputs are uint8 (scaled to [0, 1]) or floats in [0, 1], shape
    `(batch, H, W, 3)` or `(H, W, 3)`; outputs are float32 in [0, 1]. With
    `training=False` the layer returns its input unchanged (as float32).

    Args:
        kernel_size: odd number of taps; `None` for about 10% of the side.
        sigma: (min, max) range of the standard deviation, in pixels.
        probability: probability of blurring each image (SimCLR ImageNet
            preset: 0.5).
        seed: integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    ```python
    blur = RandomGaussianBlur(probability=0.5, seed=0)
    blurred = blur(images)
    ```

    References:
        - Chen et al., SimCLR, 2020, appendix A (sigma in [0.1, 2.0], kernel
          10% of the image side).
    """

    def __init__(
        self, kernel_size=None, sigma=(0.1, 2.0), probability=1.0, seed=None, **kwargs
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        sigma = tuple(float(v) for v in sigma)
        if len(sigma) != 2 or not (0.0 < sigma[0] <= sigma[1]):
            raise ValueError(
                "`sigma` must be (min, max) with 0 < min <= max. "
                f"Received: sigma={sigma}"
            )
        if kernel_size is not None and (int(kernel_size) < 1 or int(kernel_size) % 2 == 0):
            raise ValueError(
                "`kernel_size` must be a positive odd number or None. "
                f"Received: kernel_size={kernel_size}"
            )
        if not 0.0 <= probability <= 1.0:
            raise ValueError(
                f"`probability` must be in [0, 1]. Received: probability={probability}"
            )
        self.kernel_size = None if kernel_size is None else int(kernel_size)
        self.sigma = sigma
        self.probability = float(probability)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def radius_for(self, height, width):
        if self.kernel_size is not None:
            return self.kernel_size // 2
        return max(1, min(height, width) // 20)

    def get_random_transformation(self, images, training=True, seed=None):
        """Draws `sigma` (batch,) and `apply` (batch,) bool per image."""
        seed = seed if seed is not None else self.seed_generator
        batch = ops.shape(images)[0]
        return {
            "sigma": image_utils.uniform((batch,), self.sigma[0], self.sigma[1], seed),
            "apply": image_utils.bernoulli((batch,), self.probability, seed),
        }

    def kernel_weights(self, transformation, radius):
        """(batch, 2 * radius + 1) normalized 1-D kernels; a unit impulse for
        images that are not blurred."""
        offsets = ops.arange(-radius, radius + 1, dtype="float32")[None, :]
        sigma = transformation["sigma"][:, None]
        weights = ops.exp(-ops.square(offsets) / (2.0 * ops.square(sigma)))
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        impulse = ops.cast(ops.equal(offsets, 0.0), "float32")
        return ops.where(transformation["apply"][:, None], weights, impulse)

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        height, width = image_utils.spatial_size(images, self.__class__.__name__)
        radius = self.radius_for(height, width)
        weights = self.kernel_weights(transformation, radius)
        rows = ops.einsum("bt,tiy->biy", weights, _tap_matrices(height, radius))
        cols = ops.einsum("bt,tiy->biy", weights, _tap_matrices(width, radius))
        return ops.clip(image_utils.apply_separable(rows, cols, images), 0.0, 1.0)

    def call(self, images, training=True):
        images, unbatched = image_utils.to_batched_float(
            images, self.__class__.__name__
        )
        transformation = self.get_random_transformation(images, training=training)
        outputs = self.transform_images(images, transformation, training=training)
        return outputs[0] if unbatched else outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "sigma": self.sigma,
                "probability": self.probability,
                "seed": self.seed,
            }
        )
        return config
