"""Tests of RandomResizedCrop: shapes, ranges, crop statistics and resampling."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.augment import RandomResizedCrop
from tests.layer_test_case import run_layer_test


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _ramp(height, width, a=0.01, b=0.02, c=0.05):
    """A linear ramp image f(y, x) = a*y + b*x + c (+ a channel offset)."""
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    base = a * y + b * x + c
    image = np.stack([base, base + 0.01, base + 0.02], axis=-1)
    return image.astype("float32")


# -- the layer contract -------------------------------------------------------


def test_layer_contract(cifar_images):
    config = dict(
        height=24,
        width=20,
        scale=(0.2, 0.9),
        aspect_ratio=(0.5, 2.0),
        horizontal_flip=True,
        seed=7,
    )
    outputs = run_layer_test(
        RandomResizedCrop,
        config,
        cifar_images[0][:8],
        (8, 24, 20, 3),
        expected_config=config,
        random=True,
        min_change=0.1,
        keeps_float32=True,
        output_range=(0.0, 1.0),
        uint8_atol=1e-6,
        supports_unbatched=True,
        bad_input_shapes=[
            (32, 32),
            (2, 2, 32, 32, 3),
            (2, 32, 32, 1),
            (2, 32, 32, 4),
            (32, 32, 4),
        ],
        run_tf_data_test=True,
    )
    # Real images, not a blank output.
    assert outputs["output"].std() > 0.05 and outputs["float_output"].std() > 0.05


def test_upsampled_unbatched(cifar_images):
    out = _np(RandomResizedCrop(40, 40, seed=1)(cifar_images[0][3]))
    assert out.shape == (40, 40, 3)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


# -- per-image randomness ------------------------------------------------------


def test_per_image_randomness(cifar_images):
    image = cifar_images[0][7]
    batch = np.repeat(image[None], 8, axis=0)
    layer = RandomResizedCrop(32, 32, horizontal_flip=True, seed=3)
    transformation = layer.get_random_transformation(batch)
    for key in ("top", "left", "crop_height", "crop_width"):
        values = _np(transformation[key])
        assert values.shape == (8,)
        assert len(np.unique(values)) == 8, (key, values)
    out = _np(layer(batch))
    flat = out.reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(flat[i] - flat[j]).max() > 1e-3, (i, j)


# -- crop statistics ----------------------------------------------------------


def _expected_draws(scale, aspect_ratio, height, width, n=1_000_000):
    """Monte Carlo of the documented law: s ~ U(scale), log r ~ U(log
    aspect_ratio), then log r clipped to the range where a box of area
    s * H * W fits: [log(s * A / H**2), log(W**2 / (s * A))]."""
    rng = np.random.default_rng(0)
    s = rng.uniform(scale[0], scale[1], n)
    log_r = rng.uniform(math.log(aspect_ratio[0]), math.log(aspect_ratio[1]), n)
    area = s * height * width
    log_r = np.clip(log_r, np.log(area / height**2), np.log(width**2 / area))
    return s, log_r


@pytest.mark.parametrize(
    "scale,aspect_ratio,size",
    [
        ((0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0), (32, 32)),
        ((0.2, 1.0), (3.0 / 4.0, 4.0 / 3.0), (64, 64)),
        ((0.1, 0.5), (0.5, 2.0), (32, 32)),
        ((0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0), (32, 64)),
        ((0.5, 1.0), (1.0, 3.0), (40, 24)),
    ],
)
def test_crop_statistics(scale, aspect_ratio, size):
    n = 4096
    height, width = size
    images = np.zeros((n, height, width, 3), "float32")
    layer = RandomResizedCrop(16, 16, scale=scale, aspect_ratio=aspect_ratio, seed=0)
    t = {k: _np(v) for k, v in layer.get_random_transformation(images).items()}
    h, w, top, left = t["crop_height"], t["crop_width"], t["top"], t["left"]
    assert h.dtype == np.float32 and h.shape == (n,)

    # Boxes lie inside the image.
    assert (h > 0).all() and (w > 0).all()
    assert (h <= height + 1e-3).all() and (w <= width + 1e-3).all()
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height + 1e-3).all() and (left + w <= width + 1e-3).all()

    # The area fraction is the drawn s ~ U(scale) itself (the ratio, not the
    # area, is moved when a box would not fit).
    fraction = h * w / (height * width)
    assert fraction.min() >= scale[0] * (1 - 1e-4)
    assert fraction.max() <= scale[1] * (1 + 1e-4)
    width_s = scale[1] - scale[0]
    assert abs(fraction.mean() - (scale[0] + scale[1]) / 2) < 5 * width_s / math.sqrt(12 * n)
    quartile = np.mean(fraction < scale[0] + 0.25 * width_s)
    assert abs(quartile - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)

    # Aspect ratio: within the request wherever the box fits at the drawn
    # ratio; otherwise the nearest ratio that fits (a side equals the image's).
    ratio = w / h
    log_ratio = np.log(ratio)
    fits_lo = np.log(fraction * height * width / height**2)
    fits_hi = np.log(width**2 / (fraction * height * width))
    assert (log_ratio >= fits_lo - 1e-3).all() and (log_ratio <= fits_hi + 1e-3).all()
    lo, hi = math.log(aspect_ratio[0]), math.log(aspect_ratio[1])
    inside = (log_ratio >= lo - 1e-4) & (log_ratio <= hi + 1e-4)
    at_edge = (h >= height - 1e-2) | (w >= width - 1e-2)
    assert (inside | at_edge).all()
    if height == width and aspect_ratio[0] <= 1 <= aspect_ratio[1]:
        assert inside.all()  # documented: square image, range containing 1
    if height == width:
        # Both ends of the requested range are reached by unclipped boxes.
        unclipped = ~at_edge
        assert unclipped.sum() > n // 4
        assert np.quantile(log_ratio[unclipped], 0.02) < lo + 0.1 * (hi - lo)
        assert np.quantile(log_ratio[unclipped], 0.98) > hi - 0.1 * (hi - lo)

    # The whole law, clipping included, against a NumPy Monte Carlo.
    s_ref, log_r_ref = _expected_draws(scale, aspect_ratio, height, width)
    tolerance = 5 * log_r_ref.std() / math.sqrt(n) + 2e-3
    assert abs(log_ratio.mean() - log_r_ref.mean()) < tolerance, (
        log_ratio.mean(),
        log_r_ref.mean(),
    )
    edge_ref = np.mean(
        (log_r_ref <= np.log(s_ref * width / height) + 1e-6)
        | (log_r_ref >= np.log(width / (s_ref * height)) - 1e-6)
    )
    assert abs(at_edge.mean() - edge_ref) < 5 * math.sqrt(edge_ref * (1 - edge_ref) / n) + 5e-3

    # Positions: uniform over the free range (mean 1/2 of the slack).
    for start, length, side in ((top, h, height), (left, w, width)):
        slack = side - length
        free = slack > 1.0
        u = start[free] / slack[free]
        assert u.min() >= 0.0 and u.max() <= 1.0 + 1e-5
        assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / free.sum())


def test_flip_frequency():
    n = 4000
    images = np.zeros((n, 8, 8, 3), "float32")
    layer = RandomResizedCrop(8, 8, horizontal_flip=True, seed=4)
    flips = _np(layer.get_random_transformation(images)["flip"])
    assert flips.dtype == np.bool_
    assert abs(flips.mean() - 0.5) < 5 * math.sqrt(0.25 / n)
    no_flip = RandomResizedCrop(8, 8, horizontal_flip=False, seed=4)
    assert not _np(no_flip.get_random_transformation(images)["flip"]).any()


# -- resampling correctness ---------------------------------------------------


@pytest.mark.parametrize("size", [32, 17])
def test_full_scale_returns_input(cifar_images, size):
    images = cifar_images[0][:8, :size, :size].astype("float32") / 255.0
    layer = RandomResizedCrop(size, size, scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0), seed=0)
    np.testing.assert_allclose(_np(layer(images)), images, atol=1e-5)


def _box(batch, top, left, crop_height, crop_width, flip=False):
    full = np.ones((batch,), "float32")
    return {
        "top": full * top,
        "left": full * left,
        "crop_height": full * crop_height,
        "crop_width": full * crop_width,
        "flip": np.full((batch,), flip),
    }


@pytest.mark.parametrize("flip", [False, True])
def test_known_box_on_linear_ramp(flip):
    """Upsampling a crop of a linear ramp is exact at the sampled coordinates."""
    image = _ramp(32, 32)[None]
    out_h, out_w = 16, 20
    top, left, crop_h, crop_w = 4.25, 3.5, 9.0, 12.5
    layer = RandomResizedCrop(out_h, out_w)
    out = _np(layer.transform_images(image, _box(1, top, left, crop_h, crop_w, flip)))[0]
    ys = top + (np.arange(out_h) + 0.5) * crop_h / out_h - 0.5
    xs = left + (np.arange(out_w) + 0.5) * crop_w / out_w - 0.5
    if flip:
        xs = xs[::-1]
    # All samples interior, so bilinear interpolation is exact.
    assert ys.min() >= 0 and ys.max() <= 31 and xs.min() >= 0 and xs.max() <= 31
    expected = _ramp(1, 1)[0, 0][None, None, :] + (
        0.01 * ys[:, None, None] + 0.02 * xs[None, :, None]
    )
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_known_box_on_real_image_matches_tf_crop_and_resize(cifar_images):
    """A pixel-aligned box upsampled 2x equals tf.image.resize (half-pixel) of
    the cropped region up to the border rows/columns."""
    image = cifar_images[0][:1].astype("float32") / 255.0
    layer = RandomResizedCrop(32, 32)
    out = _np(layer.transform_images(image, _box(1, 8.0, 4.0, 16.0, 16.0)))[0]
    region = image[0, 8:24, 4:20]
    ref = tf.image.resize(region[None], (32, 32), method="bilinear").numpy()[0]
    # Interior samples read only pixels inside the box.
    np.testing.assert_allclose(out[1:-1, 1:-1], ref[1:-1, 1:-1], atol=1e-5)


def test_flip_reverses_columns(cifar_images):
    images = cifar_images[0][:4].astype("float32") / 255.0
    layer = RandomResizedCrop(32, 32)
    flipped = _np(layer.transform_images(images, _box(4, 0.0, 0.0, 32.0, 32.0, True)))
    np.testing.assert_allclose(flipped, images[:, :, ::-1], atol=1e-5)
    # Mixed per-image flips.
    box = _box(4, 0.0, 0.0, 32.0, 32.0)
    box["flip"] = np.array([True, False, False, True])
    mixed = _np(layer.transform_images(images, box))
    np.testing.assert_allclose(mixed[0], images[0, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(mixed[1], images[1], atol=1e-5)
    np.testing.assert_allclose(mixed[3], images[3, :, ::-1], atol=1e-5)


def test_training_false_resizes_whole_image(cifar_images):
    images = cifar_images[0][:4]
    as_float = images.astype("float32") / 255.0
    # Same size: identity, with no randomness.
    same = RandomResizedCrop(32, 32, horizontal_flip=True, seed=0)
    np.testing.assert_allclose(_np(same(images, training=False)), as_float, atol=1e-6)
    # Other sizes: the antialiased bilinear resize of the whole image.
    for size in [(16, 16), (48, 40)]:
        layer = RandomResizedCrop(*size, horizontal_flip=True, seed=0)
        out = _np(layer(images, training=False))
        ref = tf.image.resize(as_float, size, antialias=True).numpy()
        np.testing.assert_allclose(out, ref, atol=1e-5)


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 0.2), (0.5, 1.5)])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(16, 16, scale=scale)


@pytest.mark.parametrize("aspect_ratio", [(0.0, 1.0), (2.0, 1.0)])
def test_bad_aspect_ratio(aspect_ratio):
    with pytest.raises(ValueError, match="aspect_ratio"):
        RandomResizedCrop(16, 16, aspect_ratio=aspect_ratio)
