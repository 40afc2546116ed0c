"""Tests of RandomGaussianBlur against a NumPy separable Gaussian."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.augment import RandomGaussianBlur
from tests.layer_test_case import run_layer_test


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _float(images):
    return images.astype("float32") / 255.0


def _numpy_blur(image, sigma, radius):
    """Separable Gaussian, reflect-101 borders (np.pad's "reflect"), clipped."""
    t = np.arange(-radius, radius + 1, dtype="float64")
    kernel = np.exp(-(t**2) / (2.0 * sigma**2))
    kernel /= kernel.sum()
    x = image.astype("float64")
    padded = np.pad(x, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
    x = sum(kernel[k] * padded[k : k + image.shape[0]] for k in range(2 * radius + 1))
    padded = np.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    x = sum(kernel[k] * padded[:, k : k + image.shape[1]] for k in range(2 * radius + 1))
    return np.clip(x, 0.0, 1.0)


def _transformation(sigmas, apply=True):
    sigmas = np.asarray(sigmas, "float32")
    return {"sigma": sigmas, "apply": np.broadcast_to(np.asarray(apply), sigmas.shape).copy()}


def _upsampled(cifar_images, count, factor=2):
    images = _float(cifar_images[0][:count])
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


# -- kernel size --------------------------------------------------------------


def test_default_kernel_is_about_ten_percent_of_the_side():
    layer = RandomGaussianBlur()
    # 2 * (side // 20) + 1 taps, at least 3.
    assert layer.kernel_radius(32, 32) == 1
    assert layer.kernel_radius(64, 64) == 3
    assert layer.kernel_radius(224, 224) == 11
    assert layer.kernel_radius(224, 96) == 4
    assert layer.kernel_radius(8, 8) == 1
    assert RandomGaussianBlur(kernel_size=9).kernel_radius(224, 224) == 4


# -- against NumPy ------------------------------------------------------------


def test_constant_image_unchanged():
    image = np.tile(np.array([0.1, 0.5, 0.9], "float32"), (4, 40, 40, 1))
    layer = RandomGaussianBlur(kernel_size=9)
    out = _np(layer.transform_images(image, _transformation([0.1, 0.7, 1.3, 2.0])))
    np.testing.assert_allclose(out, image, atol=1e-6)
    random_out = _np(RandomGaussianBlur(seed=1)(image))
    np.testing.assert_allclose(random_out, image, atol=1e-6)


@pytest.mark.parametrize("kernel_size,upsample", [(None, 1), (None, 2), (9, 1), (5, 2), (1, 1)])
def test_matches_numpy_separable_gaussian(cifar_images, kernel_size, upsample):
    images = _upsampled(cifar_images, 4, upsample)
    size = images.shape[1]
    sigmas = [0.1, 0.6, 1.2, 2.0]
    layer = RandomGaussianBlur(kernel_size=kernel_size)
    radius = layer.kernel_radius(size, size)
    if kernel_size is not None:
        assert radius == kernel_size // 2
    out = _np(layer.transform_images(images, _transformation(sigmas)))
    for i, sigma in enumerate(sigmas):
        expected = _numpy_blur(images[i], sigma, radius)
        np.testing.assert_allclose(out[i], expected, atol=1e-5, err_msg=f"sigma={sigma}")
    if kernel_size != 1:
        # A blur that is not a no-op: sigma=2 changes the image.
        assert np.abs(out[3] - images[3]).max() > 0.05


def test_non_square_and_reflect_borders():
    rng = np.random.default_rng(0)
    images = rng.random((2, 24, 40, 3)).astype("float32")
    layer = RandomGaussianBlur(kernel_size=7)
    out = _np(layer.transform_images(images, _transformation([0.8, 1.9])))
    for i, sigma in enumerate([0.8, 1.9]):
        np.testing.assert_allclose(out[i], _numpy_blur(images[i], sigma, 3), atol=1e-5)
    # Reflect-101 written out by hand: an image varying along rows only, so
    # the horizontal pass is the identity.
    column = rng.random(24).astype("float32")
    image = np.broadcast_to(column[None, :, None, None], (1, 24, 5, 3)).copy()
    out = _np(layer.transform_images(image, _transformation([1.9])))[0, :, 2, 0]
    t = np.arange(-3, 4)
    kernel = np.exp(-(t**2) / (2 * 1.9**2))
    kernel /= kernel.sum()
    # ..., c[3], c[2], c[1] | c[0], ..., c[23] | c[22], c[21], c[20], ...
    reflected = np.concatenate([column[3:0:-1], column, column[-2:-5:-1]])
    expected = np.clip(np.convolve(reflected, kernel[::-1], mode="valid"), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # Edge replication would give a different first row.
    replicated = np.concatenate([np.full(3, column[0]), column, np.full(3, column[-1])])
    assert abs(np.convolve(replicated, kernel, mode="valid")[0] - expected[0]) > 1e-3


def test_more_sigma_more_smoothing(cifar_images):
    images = np.repeat(_upsampled(cifar_images, 1, 2), 5, axis=0)
    sigmas = [0.1, 0.5, 1.0, 1.5, 2.0]
    out = _np(RandomGaussianBlur().transform_images(images, _transformation(sigmas)))
    energy = [np.abs(np.diff(o, axis=1)).mean() for o in out]
    assert all(a > b for a, b in zip(energy, energy[1:])), energy
    # sigma=0.1: the kernel is a delta to float precision.
    np.testing.assert_allclose(out[0], images[0], atol=1e-6)


# -- randomness ---------------------------------------------------------------


def test_sigma_and_apply_draws():
    n = 4000
    layer = RandomGaussianBlur(probability=0.5, seed=3)
    t = {
        k: _np(v)
        for k, v in layer.get_random_transformation(np.zeros((n, 4, 4, 3), "float32")).items()
    }
    sigma = t["sigma"]
    assert sigma.shape == (n,) and sigma.dtype == np.float32
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert sigma.min() < 0.12 and sigma.max() > 1.98
    assert abs(sigma.mean() - 1.05) < 5 * 1.9 / math.sqrt(12 * n)
    apply = t["apply"]
    assert apply.dtype == np.bool_
    assert abs(apply.sum() - n / 2) < 5 * math.sqrt(n / 4)
    custom = RandomGaussianBlur(sigma=(0.5, 0.7), seed=3)
    s = _np(custom.get_random_transformation(np.zeros((n, 4, 4, 3), "float32"))["sigma"])
    assert s.min() >= 0.5 and s.max() <= 0.7


def test_apply_frequency_from_outputs(cifar_images):
    images = _float(cifar_images[0])
    images = np.concatenate([images] * 8)  # 2048 images
    out = _np(RandomGaussianBlur(probability=0.5, seed=5)(images))
    changed = np.abs(out - images).max(axis=(1, 2, 3)) > 1e-5
    n = len(images)
    # A blur with sigma < 0.22 moves pixels by less than 1e-5 (neighbour
    # weight exp(-1 / (2 * 0.22**2)) < 4e-5): at most (0.22 - 0.1) / 1.9 of
    # the blurred images can go unseen.
    low = 0.5 * (1 - 0.12 / 1.9)
    five_sigma = 5 * math.sqrt(n / 4)
    assert low * n - five_sigma < changed.sum() < 0.5 * n + five_sigma, changed.mean()
    np.testing.assert_allclose(out[~changed], images[~changed], atol=1e-5)


def test_probability_zero_returns_input(cifar_images):
    images = _float(cifar_images[0][:16])
    out = _np(RandomGaussianBlur(probability=0.0, seed=0)(images))
    np.testing.assert_array_equal(out, images)
    # Hand-built: non-selected images are untouched, selected ones blurred.
    t = _transformation([2.0, 2.0, 2.0, 2.0])
    t["apply"] = np.array([True, False, True, False])
    out = _np(RandomGaussianBlur().transform_images(images[:4], t))
    np.testing.assert_allclose(out[1], images[1], atol=1e-7)
    np.testing.assert_allclose(out[3], images[3], atol=1e-7)
    np.testing.assert_allclose(out[0], _numpy_blur(images[0], 2.0, 1), atol=1e-5)


def test_per_image_sigma(cifar_images):
    image = _upsampled(cifar_images, 1, 2)
    batch = np.repeat(image, 8, axis=0)
    layer = RandomGaussianBlur(seed=6)
    sigmas = _np(layer.get_random_transformation(batch)["sigma"])
    assert len(np.unique(sigmas)) == 8
    out = _np(layer(batch)).reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(out[i] - out[j]).max() > 1e-4, (i, j)


def test_training_false_is_identity(cifar_images):
    images = cifar_images[0][:4]
    out = _np(RandomGaussianBlur(seed=0)(images, training=False))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _float(images), atol=1e-7)


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"sigma": (0.0, 1.0)}, "sigma"),
        ({"sigma": (2.0, 1.0)}, "sigma"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"probability": 1.5}, "probability"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomGaussianBlur(**kwargs)


# -- the layer contract, XLA -------------------------------------------------


def test_layer_contract(cifar_images):
    config = dict(kernel_size=7, sigma=(0.2, 1.5), probability=0.5, seed=4)
    run_layer_test(
        RandomGaussianBlur,
        config,
        cifar_images[0][:8],
        (8, 32, 32, 3),
        expected_config=config,
        random=True,
        min_change=1e-2,
        keeps_float32=True,
        output_range=(0.0, 1.0),
        uint8_atol=1e-6,
        supports_unbatched=True,
        bad_input_shapes=[(32, 32), (2, 2, 32, 32, 3), (2, 32, 32, 1), (2, 32, 32, 4)],
        run_tf_data_test=True,
    )


def test_xla_transform_matches_numpy(cifar_images):
    layer = RandomGaussianBlur(kernel_size=7, seed=2)
    x = _float(cifar_images[0][:8])
    t = _transformation([0.3, 0.9, 1.5, 2.0, 0.5, 1.0, 1.2, 1.8])
    compiled = tf.function(lambda v: layer.transform_images(v, t), jit_compile=True)(x).numpy()
    for i, sigma in enumerate(t["sigma"]):
        np.testing.assert_allclose(compiled[i], _numpy_blur(x[i], float(sigma), 3), atol=1e-5)
