import functools

import keras
import numpy as np
from keras import ops

from keras_simclr.augment import image_utils


def reflect_index(index, size):
    """Reflected border (`np.pad(mode="reflect")`, torch's "reflect"):
    ..., 2, 1 | 0, 1, ..., n-1 | n-2, ..., periodic for any index."""
    index = np.asarray(index)
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.abs(index) % period
    return np.where(index < size, index, period - index)


@functools.lru_cache(maxsize=32)
def _tap_matrices(size, radius):
    """Static one-hot `P[t, i, y]`, shape (2 * radius + 1, size, size): tap
    `t` of output `i` reads input `reflect(i + t - radius)`."""
    taps = np.arange(-radius, radius + 1)[:, None]
    outputs = np.arange(size)[None, :]
    sources = reflect_index(outputs + taps, size)
    matrices = np.zeros((2 * radius + 1, size, size), "float32")
    t_index, i_index = np.meshgrid(np.arange(2 * radius + 1), np.arange(size), indexing="ij")
    # `add.at`: with a radius beyond the image, two taps can read one pixel.
    np.add.at(matrices, (t_index, i_index, sources), 1.0)
    matrices.setflags(write=False)
    return matrices


@keras.saving.register_keras_serializable(package="keras_simclr")
class RandomGaussianBlur(image_utils.PerImageAugmentation):
    """Gaussian blur with a standard deviation drawn per image.

    Per image, with probability `probability`, a separable Gaussian kernel
    with `sigma ~ U(sigma)` (in pixels) blurs the image, with reflected
    borders (`np.pad(mode="reflect")`, as torchvision); images not selected
    are returned as they are. The kernel is about 10% of the image side, as
    in SimCLR: radius `min(H, W) // 20`, `2 * radius + 1` taps, at least 3.

    The blur is two per-image matrix products: static one-hot tap matrices
    `P[t, i, y]` (reflection included) contracted with each image's 1-D
    weights give `(batch, H, H)` and `(batch, W, W)` blur matrices, applied
    with `einsum`. Every image gets its own sigma in one static-shaped pass;
    images that are not blurred get the unit impulse as kernel (identity
    matrices), so they need no separate pass.

    Inputs are integer images (uint8, 0-255, scaled to [0, 1]) or floats in
    [0, 1], shape `(batch, H, W, 3)` or `(H, W, 3)`, with static `H` and `W`;
    outputs are float32 in [0, 1], same shape. With `training=False` the
    layer returns its input (as float32 in [0, 1]).

    Args:
        kernel_size: odd number of taps, or `None` for about 10% of the
            shorter image side.
        sigma: `(min, max)` range of the standard deviation, in pixels.
        probability: probability of blurring each image (SimCLR's ImageNet
            and MoCo v2 presets: 0.5).
        seed: integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: forwarded to `keras.layers.Layer` (the `dtype` defaults to
            `"float32"`).

    Example:

    ```python
    blur = RandomGaussianBlur(probability=0.5, seed=0)
    blurred = blur(images)
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations (SimCLR), ICML 2020, appendix A (sigma in
          [0.1, 2.0], kernel 10% of the image side).
    """

    def __init__(self, kernel_size=None, sigma=(0.1, 2.0), probability=1.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        try:
            sigma = tuple(float(v) for v in sigma)
        except (TypeError, ValueError):
            raise ValueError(
                f"`sigma` must be a (min, max) pair of numbers. Received: sigma={sigma}"
            ) from None
        if len(sigma) != 2 or not (0.0 < sigma[0] <= sigma[1]):
            raise ValueError(
                f"`sigma` must be (min, max) with 0 < min <= max. Received: sigma={sigma}"
            )
        if kernel_size is not None and (
            not isinstance(kernel_size, (int, np.integer))
            or isinstance(kernel_size, bool)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(
                "`kernel_size` must be a positive odd integer or None. "
                f"Received: kernel_size={kernel_size}"
            )
        if not 0.0 <= probability <= 1.0:
            raise ValueError(
                f"`probability` must be in [0, 1]. Received: probability={probability}"
            )
        self.kernel_size = None if kernel_size is None else int(kernel_size)
        self.sigma = sigma
        self.probability = float(probability)

    def kernel_radius(self, height, width):
        """Radius of the kernel for `height` x `width` images."""
        if self.kernel_size is not None:
            return self.kernel_size // 2
        return max(1, min(height, width) // 20)

    def get_random_transformation(self, images, training=True, seed=None):
        """Draws `sigma` (batch,) float32 and `apply` (batch,) bool per image.

        Returns `None` when `training=False`. `seed`: optional seed for
        `keras.random` (an int, a seed tensor or a `SeedGenerator`); the
        layer's own generator by default.
        """
        image_utils.check_images(images, self.__class__.__name__)
        if not training:
            return None
        seed = self.seed_generator if seed is None else seed
        noise = image_utils.uniform_columns(image_utils.batch_size(images), 2, seed)
        low, high = self.sigma
        return {
            "sigma": low + (high - low) * noise[:, 0],
            "apply": noise[:, 1] < self.probability,
        }

    def kernel_weights(self, transformation, radius):
        """(batch, 2 * radius + 1) normalized 1-D Gaussian kernels; the unit
        impulse for images that are not blurred."""
        offsets = ops.arange(-radius, radius + 1, dtype="float32")[None, :]
        sigma = ops.reshape(ops.cast(transformation["sigma"], "float32"), (-1, 1))
        weights = ops.exp(-ops.square(offsets) / (2.0 * ops.square(sigma)))
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        impulse = ops.cast(ops.equal(offsets, 0.0), "float32")
        apply = ops.reshape(transformation["apply"], (-1, 1))
        return ops.where(apply, weights, impulse)

    def transform_images(self, images, transformation, training=True):
        """Blurs with the drawn sigmas; `transformation=None` (or
        `training=False`) returns the images as float32."""
        images, unbatched = image_utils.to_batched_float(images, self.__class__.__name__)
        if transformation is None or not training:
            return images[0] if unbatched else images
        height, width = image_utils.spatial_size(images, self.__class__.__name__)
        radius = self.kernel_radius(height, width)
        weights = self.kernel_weights(transformation, radius)
        rows = ops.einsum("bt,tiy->biy", weights, _tap_matrices(height, radius))
        cols = ops.einsum("bt,tix->bix", weights, _tap_matrices(width, radius))
        outputs = ops.clip(image_utils.apply_separable(rows, cols, images), 0.0, 1.0)
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
            }
        )
        return config
