"""Tests of RandomColorDistortion against tf.image and binomial frequencies."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.augment import RandomColorDistortion
from tests.layer_test_case import run_layer_test

GRAY = np.array([0.2989, 0.5870, 0.1140], "float32")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _float(images):
    return images.astype("float32") / 255.0


def _colorful(cifar_images, threshold=0.05):
    """CIFAR images that are not already gray (some CIFAR images are)."""
    images = _float(cifar_images[0])
    spread = (images.max(axis=-1) - images.min(axis=-1)).mean(axis=(1, 2))
    return images[spread > threshold]


def _is_gray(images, atol=1e-5):
    return (images.max(axis=-1) - images.min(axis=-1)).max(axis=(1, 2)) < atol


def _binomial_ok(count, n, p):
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


# -- the layer contract -------------------------------------------------------


def test_layer_contract(cifar_images):
    config = dict(
        strength=0.5,
        brightness="additive",
        jitter_probability=0.7,
        grayscale_probability=0.3,
        random_order=False,
        seed=3,
    )
    outputs = run_layer_test(
        RandomColorDistortion,
        config,
        cifar_images[0][:8],
        (8, 32, 32, 3),
        expected_config=config,
        random=True,
        min_change=0.1,
        keeps_float32=True,
        output_range=(0.0, 1.0),
        uint8_atol=1e-6,
        supports_unbatched=True,
        bad_input_shapes=[(32, 32), (2, 2, 32, 32, 3), (2, 32, 32, 1), (2, 32, 32, 4)],
        run_tf_data_test=True,
    )
    # The views are not the input.
    assert np.abs(outputs["output"] - _float(cifar_images[0][:8])).max() > 0.1


@pytest.mark.parametrize("as_float", [False, True])
def test_default_strength_changes_the_images(cifar_images, as_float):
    images = cifar_images[0][:32]
    if as_float:
        images = _float(images)
    out = _np(RandomColorDistortion(strength=1.0, seed=0)(images))
    assert out.shape == (32, 32, 32, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - _float(cifar_images[0][:32])).max() > 0.1


def test_training_false_is_identity(cifar_images):
    images = cifar_images[0][:8]
    out = _np(RandomColorDistortion(seed=1)(images, training=False))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _float(images), atol=1e-7)


# -- per-image randomness ------------------------------------------------------


def test_per_image_randomness(cifar_images):
    image = _colorful(cifar_images)[0]
    batch = np.repeat(image[None], 8, axis=0)
    layer = RandomColorDistortion(jitter_probability=1.0, grayscale_probability=0.0, seed=3)
    t = {k: _np(v) for k, v in layer.get_random_transformation(batch).items()}
    for key in ("brightness", "contrast", "saturation", "hue"):
        assert t[key].shape == (8,)
        assert len(np.unique(t[key])) == 8, key
    assert t["order"].shape == (8, 4)
    out = _np(layer(batch)).reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(out[i] - out[j]).max() > 1e-3, (i, j)


# -- parameter distributions --------------------------------------------------


@pytest.mark.parametrize("strength", [1.0, 0.5, 1.5])
@pytest.mark.parametrize("brightness", ["multiplicative", "additive"])
def test_parameter_ranges(strength, brightness):
    n = 4000
    layer = RandomColorDistortion(strength=strength, brightness=brightness, seed=0)
    t = {
        k: _np(v)
        for k, v in layer.get_random_transformation(np.zeros((n, 2, 2, 3), "float32")).items()
    }
    low, high = max(0.0, 1 - 0.8 * strength), 1 + 0.8 * strength
    ranges = {
        "contrast": (low, high),
        "saturation": (low, high),
        "hue": (-0.2 * strength, 0.2 * strength),
        "brightness": (low, high)
        if brightness == "multiplicative"
        else (-0.8 * strength, 0.8 * strength),
    }
    for key, (lo, hi) in ranges.items():
        values = t[key]
        assert values.shape == (n,)
        assert values.min() >= lo - 1e-6 and values.max() <= hi + 1e-6, key
        # Uniform: ends reached and mean at the midpoint.
        width = hi - lo
        assert values.min() < lo + 0.01 * width and values.max() > hi - 0.01 * width
        assert abs(values.mean() - (lo + hi) / 2) < 5 * width / math.sqrt(12 * n), key
    # Independent draws per parameter.
    assert abs(np.corrcoef(t["contrast"], t["saturation"])[0, 1]) < 0.1
    # Bernoulli frequencies, drawn independently.
    assert t["jitter"].dtype == np.bool_ and t["grayscale"].dtype == np.bool_
    assert _binomial_ok(t["jitter"].sum(), n, 0.8)
    assert _binomial_ok(t["grayscale"].sum(), n, 0.2)
    assert _binomial_ok((t["jitter"] & t["grayscale"]).sum(), n, 0.16)


def test_order_is_a_uniform_random_permutation():
    n = 4000
    layer = RandomColorDistortion(seed=2)
    order = _np(layer.get_random_transformation(np.zeros((n, 2, 2, 3), "float32"))["order"])
    assert order.dtype == np.int32 and order.shape == (n, 4)
    np.testing.assert_array_equal(np.sort(order, axis=1), np.tile(np.arange(4), (n, 1)))
    for step in range(4):
        counts = np.bincount(order[:, step], minlength=4)
        for count in counts:
            assert _binomial_ok(count, n, 0.25), (step, counts)
    permutations = {tuple(row) for row in order}
    assert len(permutations) == 24
    fixed = RandomColorDistortion(random_order=False, seed=2)
    fixed_order = _np(fixed.get_random_transformation(np.zeros((5, 2, 2, 3), "float32"))["order"])
    np.testing.assert_array_equal(fixed_order, np.tile(np.arange(4), (5, 1)))


# -- frequencies measured from outputs ----------------------------------------


def test_grayscale_frequency_from_outputs(cifar_images):
    base = _colorful(cifar_images)
    assert len(base) > 200
    images = np.concatenate([base] * (2000 // len(base) + 1))[:2000]
    layer = RandomColorDistortion(strength=1.0, seed=7)
    out = _np(layer(images))
    gray = _is_gray(out)
    assert _binomial_ok(gray.sum(), len(images), 0.2), gray.mean()
    # A gray output is the ITU-R 601 luma of some jittered image: three equal
    # channels; the others keep color.
    assert (~_is_gray(out[~gray], atol=1e-3)).all()


def test_jitter_frequency_from_outputs(cifar_images):
    base = _colorful(cifar_images)
    images = np.concatenate([base] * (2000 // len(base) + 1))[:2000]
    layer = RandomColorDistortion(strength=1.0, grayscale_probability=0.0, seed=8)
    out = _np(layer(images))
    changed = np.abs(out - images).max(axis=(1, 2, 3)) > 1e-4
    assert _binomial_ok(changed.sum(), len(images), 0.8), changed.mean()
    # Unchanged images are returned exactly.
    np.testing.assert_allclose(out[~changed], images[~changed], atol=1e-4)
    assert not _is_gray(out).any()


def test_probability_extremes(cifar_images):
    images = _colorful(cifar_images)[:32]
    none = RandomColorDistortion(jitter_probability=0.0, grayscale_probability=0.0, seed=0)
    np.testing.assert_array_equal(_np(none(images)), images)
    all_gray = RandomColorDistortion(jitter_probability=0.0, grayscale_probability=1.0, seed=0)
    out = _np(all_gray(images))
    expected = np.repeat((images * GRAY).sum(-1, keepdims=True), 3, axis=-1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(
        out, np.repeat(tf.image.rgb_to_grayscale(images).numpy(), 3, axis=-1), atol=1e-5
    )


# -- each operation against NumPy / tf.image ---------------------------------


@pytest.mark.parametrize("brightness", ["multiplicative", "additive"])
def test_brightness_only_through_transform_images(brightness):
    """Only brightness active (other factors neutral), clipped to [0, 1]."""
    color = np.array([0.2, 0.4, 0.6], "float32")
    image = np.tile(color, (3, 4, 4, 1))
    values = np.array(
        [1.5, 0.5, 3.0] if brightness == "multiplicative" else [0.3, -0.1, -0.5], "float32"
    )
    t = {
        "brightness": values,
        "contrast": np.ones(3, "float32"),
        "saturation": np.ones(3, "float32"),
        "hue": np.zeros(3, "float32"),
        "jitter": np.ones(3, bool),
        "grayscale": np.zeros(3, bool),
        "order": np.tile(np.arange(4, dtype="int32"), (3, 1)),
    }
    for random_order in (False, True):
        layer = RandomColorDistortion(brightness=brightness, random_order=random_order)
        out = _np(layer.transform_images(image, t))
        if brightness == "multiplicative":
            expected = np.clip(color[None] * values[:, None], 0, 1)
        else:
            expected = np.clip(color[None] + values[:, None], 0, 1)
        np.testing.assert_allclose(out[:, 0, 0], expected, atol=1e-5)
        np.testing.assert_allclose(
            out, np.broadcast_to(expected[:, None, None], out.shape), atol=1e-5
        )


def _only(batch, mode="multiplicative", **values):
    """A transformation with every operation neutral but those in `values`."""
    t = {
        "brightness": np.full(batch, 1.0 if mode == "multiplicative" else 0.0, "float32"),
        "contrast": np.ones(batch, "float32"),
        "saturation": np.ones(batch, "float32"),
        "hue": np.zeros(batch, "float32"),
        "jitter": np.ones(batch, bool),
        "grayscale": np.zeros(batch, bool),
        "order": np.tile(np.arange(4, dtype="int32"), (batch, 1)),
    }
    for key, value in values.items():
        t[key] = np.asarray(value, t[key].dtype)
    return t


def _per_image_tf(images, fn, values):
    return np.stack(
        [np.clip(fn(image, float(v)).numpy(), 0, 1) for image, v in zip(images, values)]
    )


@pytest.mark.parametrize("random_order", [False, True])
def test_contrast_matches_tf(cifar_images, random_order):
    images = _float(cifar_images[0][:6])
    factors = np.array([0.2, 0.6, 1.0, 1.4, 1.8, 0.9], "float32")
    layer = RandomColorDistortion(random_order=random_order)
    out = _np(layer.transform_images(images, _only(6, contrast=factors)))
    ref = _per_image_tf(images, tf.image.adjust_contrast, factors)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert np.abs(out[0] - images[0]).max() > 0.1


@pytest.mark.parametrize("random_order", [False, True])
def test_saturation_matches_tf(cifar_images, random_order):
    images = _float(cifar_images[0][:6])
    factors = np.array([0.0, 0.2, 0.6, 1.0, 1.4, 1.8], "float32")
    layer = RandomColorDistortion(random_order=random_order)
    out = _np(layer.transform_images(images, _only(6, saturation=factors)))
    ref = _per_image_tf(images, tf.image.adjust_saturation, factors)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    # Saturation 0 is a gray image (HSV value, i.e. max channel).
    np.testing.assert_allclose(
        out[0], np.repeat(images[0].max(-1, keepdims=True), 3, -1), atol=1e-4
    )


@pytest.mark.parametrize("random_order", [False, True])
def test_hue_matches_tf(cifar_images, random_order):
    images = _float(cifar_images[0][:6])
    deltas = np.array([-0.2, -0.1, 0.0, 0.05, 0.15, 0.2], "float32")
    layer = RandomColorDistortion(random_order=random_order)
    out = _np(layer.transform_images(images, _only(6, hue=deltas)))
    ref = _per_image_tf(images, tf.image.adjust_hue, deltas)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    # Hue +-0.5 turns wrap to the same image.
    pair = np.repeat(images[:1], 2, axis=0)
    wrapped = _np(layer.transform_images(pair, _only(2, hue=[0.5, -0.5])))
    np.testing.assert_allclose(wrapped[0], wrapped[1], atol=1e-4)


@pytest.mark.parametrize("brightness", ["multiplicative", "additive"])
def test_brightness_matches_numpy_on_real_images(cifar_images, brightness):
    images = _float(cifar_images[0][:4])
    values = [0.3, 0.9, 1.2, 1.8] if brightness == "multiplicative" else [-0.5, -0.1, 0.2, 0.6]
    layer = RandomColorDistortion(brightness=brightness)
    out = _np(layer.transform_images(images, _only(4, brightness, brightness=values)))
    v = np.asarray(values, "float32")[:, None, None, None]
    expected = np.clip(images * v if brightness == "multiplicative" else images + v, 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def _tf_reference(images, t, random_order, brightness="multiplicative"):
    """SimCLR's color_jitter + color_drop with tf.image, per image."""
    if brightness == "multiplicative":
        bright = lambda x, i: x * t["brightness"][i]  # noqa: E731
    else:
        bright = lambda x, i: tf.image.adjust_brightness(x, t["brightness"][i])  # noqa: E731
    ops = [
        bright,
        lambda x, i: tf.image.adjust_contrast(x, t["contrast"][i]),
        lambda x, i: tf.image.adjust_saturation(x, t["saturation"][i]),
        lambda x, i: tf.image.adjust_hue(x, t["hue"][i]),
    ]
    outputs = []
    for i, image in enumerate(images):
        x = tf.constant(image)
        if t["jitter"][i]:
            order = t["order"][i] if random_order else range(4)
            for k in order:
                x = tf.clip_by_value(ops[k](x, i), 0.0, 1.0)
        if t["grayscale"][i]:
            x = tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 3])
        outputs.append(x.numpy())
    return np.stack(outputs)


@pytest.mark.parametrize(
    "random_order,brightness",
    [(False, "multiplicative"), (True, "multiplicative"), (True, "additive")],
)
def test_full_layer_matches_tf_reference(cifar_images, random_order, brightness):
    images = _float(cifar_images[0][:48])
    layer = RandomColorDistortion(
        strength=1.0, brightness=brightness, random_order=random_order, seed=5
    )
    t = {k: _np(v) for k, v in layer.get_random_transformation(images).items()}
    # The draw covers both branches of each coin.
    assert t["jitter"].any() and (~t["jitter"]).any()
    assert t["grayscale"].any() and (~t["grayscale"]).any()
    out = _np(layer.transform_images(images, t))
    ref = _tf_reference(images, t, random_order, brightness)
    np.testing.assert_allclose(out, ref, atol=2e-4)


def test_random_order_matters(cifar_images):
    """Two orders of the same factors give different images (the order is
    really applied per image)."""
    images = np.repeat(_colorful(cifar_images)[:1], 2, axis=0)
    t = {
        "brightness": np.full(2, 1.6, "float32"),
        "contrast": np.full(2, 1.7, "float32"),
        "saturation": np.full(2, 0.3, "float32"),
        "hue": np.full(2, 0.15, "float32"),
        "jitter": np.ones(2, bool),
        "grayscale": np.zeros(2, bool),
        "order": np.array([[0, 1, 2, 3], [3, 2, 1, 0]], "int32"),
    }
    out = _np(RandomColorDistortion(random_order=True).transform_images(images, t))
    assert np.abs(out[0] - out[1]).max() > 0.05
    np.testing.assert_allclose(out, _tf_reference(images, t, True), atol=2e-4)


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"strength": -0.1}, "strength"),
        ({"brightness": "gamma"}, "brightness"),
        ({"jitter_probability": 1.5}, "jitter_probability"),
        ({"grayscale_probability": -0.1}, "grayscale_probability"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomColorDistortion(**kwargs)


# -- XLA ----------------------------------------------------------------------


def test_xla_transform_matches_eager(cifar_images):
    """The compiled transform equals the eager one for the same parameters."""
    images = _float(cifar_images[0][:16])
    layer = RandomColorDistortion(seed=2)
    t = {k: _np(v) for k, v in layer.get_random_transformation(images).items()}
    compiled = tf.function(lambda v: layer.transform_images(v, t), jit_compile=True)(images)
    np.testing.assert_allclose(compiled.numpy(), _np(layer.transform_images(images, t)), atol=1e-4)


# -- the closed-form HSV pass against colorsys; drawn brightness on gray ------


def test_saturation_and_hue_pass_matches_colorsys(cifar_images):
    """`adjust_saturation_and_hue` against Python's colorsys, pixel by pixel
    (an oracle independent of TensorFlow), with both factors at once."""
    import colorsys

    from keras_simclr.augment.random_color_distortion import adjust_saturation_and_hue

    images = _float(cifar_images[0][:3, :12, :12])
    images[0, 0, :3] = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]
    saturation = np.array([0.3, 1.7, 0.0], "float32")
    hue = np.array([0.17, -0.45, 0.3], "float32")
    out = _np(
        adjust_saturation_and_hue(images, saturation[:, None, None, None], hue[:, None, None, None])
    )
    expected = np.empty_like(images)
    for i, image in enumerate(images):
        for y in range(image.shape[0]):
            for x in range(image.shape[1]):
                h, s, v = colorsys.rgb_to_hsv(*image[y, x].tolist())
                s = min(max(s * saturation[i], 0.0), 1.0)
                h = (h + hue[i]) % 1.0
                expected[i, y, x] = colorsys.hsv_to_rgb(h, s, v)
    np.testing.assert_allclose(out, expected, atol=2e-6)


@pytest.mark.parametrize("brightness", ["multiplicative", "additive"])
def test_drawn_brightness_on_constant_gray_image(brightness):
    """On a constant gray image contrast, saturation and hue are no-ops, so
    the jittered output is clip(x * f) (v2) or clip(x + d) (v1) with the
    drawn per-image value, in any order."""
    n, strength = 64, 1.0
    image = np.full((n, 4, 4, 3), 0.6, "float32")
    layer = RandomColorDistortion(
        strength=strength,
        brightness=brightness,
        jitter_probability=1.0,
        grayscale_probability=0.0,
        seed=3,
    )
    t = layer.get_random_transformation(image, seed=11)
    values = _np(t["brightness"])
    out = _np(layer.transform_images(image, t))
    if brightness == "multiplicative":
        assert values.min() >= 1.0 - 0.8 * strength - 1e-6
        assert values.max() <= 1.0 + 0.8 * strength + 1e-6
        expected = np.clip(0.6 * values, 0.0, 1.0)
    else:
        assert values.min() >= -0.8 * strength - 1e-6
        assert values.max() <= 0.8 * strength + 1e-6
        expected = np.clip(0.6 + values, 0.0, 1.0)
    assert values.std() > 0.2  # drawn per image
    np.testing.assert_allclose(
        out, np.broadcast_to(expected[:, None, None, None], out.shape), atol=1e-5
    )


def test_every_order_matches_tf_reference(cifar_images):
    """One image per permutation of the four operations (24), all applied,
    against tf.image in that order."""
    import itertools

    orders = np.array(list(itertools.permutations(range(4))), "int32")
    images = np.repeat(_colorful(cifar_images)[:1], len(orders), axis=0)
    n = len(orders)
    t = {
        "brightness": np.full(n, 1.3, "float32"),
        "contrast": np.full(n, 1.6, "float32"),
        "saturation": np.full(n, 0.4, "float32"),
        "hue": np.full(n, 0.12, "float32"),
        "jitter": np.ones(n, bool),
        "grayscale": np.zeros(n, bool),
        "order": orders,
    }
    out = _np(RandomColorDistortion(random_order=True).transform_images(images, t))
    np.testing.assert_allclose(out, _tf_reference(images, t, True), atol=2e-4)
