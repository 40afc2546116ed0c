"""Tests of the SimCLRAugmentation presets and pipeline."""

import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.augment import RandomColorDistortion
from keras_simclr.augment import RandomGaussianBlur
from keras_simclr.augment import RandomResizedCrop
from keras_simclr.augment import SimCLRAugmentation
from tests.conftest import run_in_subprocess
from tests.layer_test_case import run_layer_test


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _float(images):
    return images.astype("float32") / 255.0


def _upsample(images, size):
    """Nearest-neighbour resize of (batch, 32, 32, 3) images to `size`."""
    index = (np.arange(size) * images.shape[1]) // size
    return images[:, index][:, :, index]


def _is_gray(images, atol=1e-5):
    return (images.max(axis=-1) - images.min(axis=-1)).max(axis=(1, 2)) < atol


# -- shapes, dtypes, ranges ---------------------------------------------------


@pytest.mark.parametrize("preset", ["cifar", "imagenet", "moco_v2"])
@pytest.mark.parametrize("as_float", [False, True])
def test_shapes_dtype_range(cifar_images, preset, as_float):
    images = cifar_images[0][:16]
    if as_float:
        images = _float(images)
    out = _np(SimCLRAugmentation(32, preset=preset, seed=0)(images))
    assert out.shape == (16, 32, 32, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 0.05
    # Views are not the input.
    assert np.abs(out - _float(cifar_images[0][:16])).max() > 0.2


def test_layer_contract(cifar_images):
    config = dict(image_size=(24, 28), preset="imagenet", brightness="additive", seed=13)
    run_layer_test(
        SimCLRAugmentation,
        config,
        cifar_images[0][:8],
        (8, 24, 28, 3),
        expected_config=config,
        random=True,
        min_change=0.1,
        keeps_float32=True,
        output_range=(0.0, 1.0),
        uint8_atol=1e-5,
        supports_unbatched=True,
        bad_input_shapes=[
            (32, 32),
            (2, 2, 32, 32, 3),
            (2, 32, 32, 1),
            (2, 32, 32, 4),
            (32, 32, 1),
        ],
        run_tf_data_test=True,
    )


def test_imagenet_at_64_from_72(cifar_images):
    images = _upsample(cifar_images[0][:8], 72)
    assert images.shape == (8, 72, 72, 3) and images.dtype == np.uint8
    out = _np(SimCLRAugmentation(64, preset="imagenet", seed=1)(images))
    assert out.shape == (8, 64, 64, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0


# -- presets ------------------------------------------------------------------


def test_preset_strength_sets_the_color_spread():
    """On flat images crop and blur are no-ops, so the views show the color
    distortion alone: imagenet's strength 1.0 spreads the colors further than
    cifar's 0.5 (less than twice as far: outputs are clipped to [0, 1]);
    moco_v2, with cifar's strength and seed, gives cifar's views."""
    flat = np.tile(np.array([0.45, 0.5, 0.35], "float32"), (2000, 8, 8, 1))

    def views(preset, brightness=None):
        layer = SimCLRAugmentation(8, preset=preset, brightness=brightness, seed=0)
        out = _np(layer(flat))
        np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), atol=1e-6)
        return out[:, 0, 0]

    cifar, imagenet, moco = views("cifar"), views("imagenet"), views("moco_v2")
    np.testing.assert_allclose(moco, cifar, atol=1e-6)
    assert 1.5 < imagenet.std() / cifar.std() < 2.0, (imagenet.std(), cifar.std())
    # Additive brightness shifts by up to 0.8 * 0.5 = 0.4; multiplicative
    # scales these colors (about 0.45) by up to 1 +- 0.4, i.e. by about 0.18.
    additive = views("cifar", "additive")
    assert additive.std() > 1.5 * cifar.std(), (additive.std(), cifar.std())


def test_moco_v2_crop_area():
    layer = SimCLRAugmentation(16, preset="moco_v2", seed=0)
    t = layer.crop.get_random_transformation(np.zeros((2000, 32, 32, 3), "float32"))
    fraction = _np(t["crop_height"]) * _np(t["crop_width"]) / 32**2
    assert fraction.min() >= 0.2 - 1e-4 and fraction.max() <= 1.0 + 1e-4
    assert fraction.min() < 0.21
    assert abs(fraction.mean() - 0.6) < 5 * 0.8 / math.sqrt(12 * 2000)


@pytest.mark.parametrize("preset", ["imagenett", "simclr", ""])
def test_unknown_preset(preset):
    with pytest.raises(ValueError, match=re.escape(repr(preset))):
        SimCLRAugmentation(32, preset=preset)


def test_bad_brightness():
    with pytest.raises(ValueError, match="brightness"):
        SimCLRAugmentation(32, brightness="gamma")


# -- the pipeline equals its parts --------------------------------------------


@pytest.mark.parametrize(
    "preset,brightness",
    [("cifar", None), ("imagenet", None), ("moco_v2", None), ("cifar", "additive")],
)
def test_pipeline_is_crop_then_color_then_blur(cifar_images, preset, brightness):
    images = _upsample(cifar_images[0][:16], 48)
    layer = SimCLRAugmentation(40, preset=preset, brightness=brightness, seed=10)
    settings = {
        "cifar": ((0.08, 1.0), 0.5, None),
        "imagenet": ((0.08, 1.0), 1.0, 0.5),
        "moco_v2": ((0.2, 1.0), 0.5, 0.5),
    }[preset]
    crop = RandomResizedCrop(40, 40, scale=settings[0], horizontal_flip=True, seed=10)
    color = RandomColorDistortion(
        strength=settings[1], brightness=brightness or "multiplicative", seed=11
    )
    expected = color(crop(images))
    if settings[2] is not None:
        expected = RandomGaussianBlur(probability=settings[2], seed=12)(expected)
    np.testing.assert_allclose(_np(layer(images)), _np(expected), atol=1e-5)


def test_training_false_only_resizes(cifar_images):
    images = cifar_images[0][:8]
    same = SimCLRAugmentation(32, preset="imagenet", seed=0)
    np.testing.assert_allclose(_np(same(images, training=False)), _float(images), atol=1e-6)
    smaller = SimCLRAugmentation(24, preset="imagenet", seed=0)
    ref = tf.image.resize(_float(images), (24, 24), antialias=True).numpy()
    np.testing.assert_allclose(_np(smaller(images, training=False)), ref, atol=1e-5)


# -- randomness ---------------------------------------------------------------


@pytest.mark.parametrize("preset", ["cifar", "imagenet"])
def test_per_image_randomness(cifar_images, preset):
    batch = np.repeat(cifar_images[0][7:8], 8, axis=0)
    out = _np(SimCLRAugmentation(32, preset=preset, seed=2)(batch)).reshape(8, -1)
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(out[i] - out[j]).max() > 1e-2, (i, j)


def test_two_views_differ(cifar_images):
    images = cifar_images[0][:16]
    layer = SimCLRAugmentation(32, seed=2)
    a, b = _np(layer(images)), _np(layer(images))
    assert (np.abs(a - b).reshape(16, -1).max(axis=1) > 1e-2).all()


def test_seeded_reproducibility_without_blur(cifar_images):
    # The contract test covers a preset with blur (imagenet).
    images = cifar_images[0][:8]
    a = _np(SimCLRAugmentation(32, preset="cifar", seed=5)(images))
    b = _np(SimCLRAugmentation(32, preset="cifar", seed=5)(images))
    c = _np(SimCLRAugmentation(32, preset="cifar", seed=6)(images))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def test_grayscale_frequency_through_pipeline(cifar_images):
    images = _float(cifar_images[0])
    spread = (images.max(-1) - images.min(-1)).mean(axis=(1, 2))
    colorful = cifar_images[0][spread > 0.05]
    batch = np.concatenate([colorful] * (2000 // len(colorful) + 1))[:2000]
    out = _np(SimCLRAugmentation(24, preset="cifar", seed=4)(batch))
    gray = _is_gray(out)
    n = len(batch)
    assert abs(gray.sum() - 0.2 * n) < 5 * math.sqrt(n * 0.2 * 0.8), gray.mean()


# -- saving, tf.data, XLA -----------------------------------------------------


def test_keras_save_load_functional(tmp_path, cifar_images):
    """In a functional model (the contract test saves a Sequential one)."""
    images = _float(cifar_images[0][:8])
    layer = SimCLRAugmentation(24, preset="imagenet", seed=13)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, layer(inputs))
    path = os.path.join(tmp_path, "augment.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = [l for l in loaded.layers if isinstance(l, SimCLRAugmentation)]
    assert len(restored) == 1
    assert restored[0].get_config() == layer.get_config()
    a, b = _np(loaded(images)), _np(model(images))
    assert a.shape == (8, 24, 24, 3)
    np.testing.assert_array_equal(a, b)
    # Inference mode through the reloaded model: resize only.
    ref = tf.image.resize(images, (24, 24), antialias=True).numpy()
    np.testing.assert_allclose(_np(loaded.predict(images, verbose=0)), ref, atol=1e-5)


def test_tf_data_two_views_per_batch(cifar_images):
    images = cifar_images[0][:8]
    layer = SimCLRAugmentation(24, preset="imagenet", seed=2)
    batched = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(4)
        .map(lambda x: (layer(x), layer(x)), num_parallel_calls=tf.data.AUTOTUNE)
    )
    pairs = [(a.numpy(), b.numpy()) for a, b in batched]
    assert len(pairs) == 2
    for a, b in pairs:
        assert a.shape == b.shape == (4, 24, 24, 3)
        assert 0 <= a.min() and a.max() <= 1
        assert np.abs(a - b).max() > 1e-2


def test_per_image_randomness_under_xla(cifar_images):
    images = tf.constant(cifar_images[0][:8])
    layer = SimCLRAugmentation(24, preset="imagenet", seed=2)
    fn = tf.function(lambda x: layer(x), jit_compile=True)
    copies = fn(tf.repeat(images[:1], 8, axis=0)).numpy().reshape(8, -1)
    assert (
        min(np.abs(copies[i] - copies[j]).max() for i in range(8) for j in range(i + 1, 8)) > 1e-2
    )


JAX_CODE = r"""
import json
import numpy as np
import jax
import keras
from keras_simclr.augment import SimCLRAugmentation
from tests.conftest import decode_cifar

assert keras.backend.backend() == "jax"
images, _ = decode_cifar("train", 8)
index = (np.arange(72) * 32) // 72
images = images[:, index][:, :, index]  # (8, 72, 72, 3) uint8
same = np.repeat(images[:1], 8, axis=0)

# A keras Model, traced by jax.jit through its stateless call.
model = keras.Sequential(
    [keras.Input((72, 72, 3), dtype="uint8"), SimCLRAugmentation(64, preset="imagenet", seed=0)]
)
state = [v.value for v in model.non_trainable_variables]
assert len(state) == 3  # crop, color and blur seed states

@jax.jit
def augment(state, x):
    return model.stateless_call([], state, x, training=True)

out1, state1 = augment(state, images)
out2, state2 = augment(state1, images)
copies, _ = augment(state2, same)
out1, out2, copies = (np.asarray(o) for o in (out1, out2, copies))
flat = copies.reshape(8, -1)
pair_diffs = [
    float(np.abs(flat[i] - flat[j]).max()) for i in range(8) for j in range(i + 1, 8)
]
print(json.dumps({
    "shape": list(out1.shape),
    "dtype": str(out1.dtype),
    "min": float(min(out1.min(), out2.min())),
    "max": float(max(out1.max(), out2.max())),
    "views_diff": float(np.abs(out1 - out2).max()),
    "min_pair_diff": min(pair_diffs),
    "state_moved": bool(any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(state, state1))),
}))
"""


@pytest.mark.process
def test_jax_backend_jit():
    import json

    stdout = run_in_subprocess(JAX_CODE, backend="jax", timeout=300)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["shape"] == [8, 64, 64, 3] and result["dtype"] == "float32"
    assert 0.0 <= result["min"] and result["max"] <= 1.0
    assert result["views_diff"] > 0.1  # the state advances between calls
    assert result["state_moved"]
    assert result["min_pair_diff"] > 1e-2  # per-image randomness under jit


# -- image_size, inference, mixed precision, JAX numerics --------------------


@pytest.mark.parametrize("image_size", [0, (32,), (32, 32, 3), "big"])
def test_bad_image_size(image_size):
    with pytest.raises(ValueError, match="Received: image_size="):
        SimCLRAugmentation(image_size)


def test_predict_in_a_model_only_resizes(cifar_images):
    """Inside a model, predict (training=False) is the deterministic resize;
    a training call augments."""
    images = cifar_images[0][:8]
    model = keras.Sequential(
        [keras.Input((32, 32, 3), dtype="uint8"), SimCLRAugmentation(16, seed=0)]
    )
    ref = tf.image.resize(_float(images), (16, 16), antialias=True).numpy()
    np.testing.assert_allclose(model.predict(images, verbose=0), ref, atol=1e-5)
    assert np.abs(_np(model(images, training=True)) - ref).max() > 0.1


def test_mixed_bfloat16_policy_reaches_the_sublayers():
    # The contract test checks the outputs under the policy.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = SimCLRAugmentation(32, preset="imagenet", seed=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    dtypes = {l.compute_dtype for l in (layer, layer.crop, layer.color, layer.blur)}
    assert dtypes == {"float32"}


def _fixed_transformations(n):
    rng = np.random.default_rng(0)
    crop = {
        "top": rng.uniform(0, 8, n).astype("float32"),
        "left": rng.uniform(0, 8, n).astype("float32"),
        "crop_height": rng.uniform(12, 24, n).astype("float32"),
        "crop_width": rng.uniform(12, 24, n).astype("float32"),
        "flip": rng.uniform(size=n) < 0.5,
    }
    color = {
        "brightness": rng.uniform(0.2, 1.8, n).astype("float32"),
        "contrast": rng.uniform(0.2, 1.8, n).astype("float32"),
        "saturation": rng.uniform(0.2, 1.8, n).astype("float32"),
        "hue": rng.uniform(-0.2, 0.2, n).astype("float32"),
        "jitter": rng.uniform(size=n) < 0.8,
        "grayscale": rng.uniform(size=n) < 0.3,
        "order": np.argsort(rng.uniform(size=(n, 4)), axis=1).astype("int32"),
    }
    blur = {
        "sigma": rng.uniform(0.1, 2.0, n).astype("float32"),
        "apply": rng.uniform(size=n) < 0.5,
    }
    return crop, color, blur


@pytest.mark.process
def test_jax_and_tensorflow_compute_the_same_views(cifar_images, tmp_path):
    """Given the same drawn parameters, the three layers' `transform_images`
    give the same numbers on JAX (under jax.jit) as on TensorFlow."""
    n = 16
    crop_t, color_t, blur_t = _fixed_transformations(n)
    images = cifar_images[0][:n]
    x = RandomResizedCrop(24, 24).transform_images(images, crop_t)
    x = RandomColorDistortion().transform_images(x, color_t)
    expected = _np(RandomGaussianBlur().transform_images(x, blur_t))
    np.savez(
        tmp_path / "inputs.npz",
        images=images,
        **{f"crop_{k}": v for k, v in crop_t.items()},
        **{f"color_{k}": v for k, v in color_t.items()},
        **{f"blur_{k}": v for k, v in blur_t.items()},
    )
    code = f"""
import jax
import numpy as np
from keras_simclr.augment import RandomColorDistortion, RandomGaussianBlur, RandomResizedCrop

data = dict(np.load({str(tmp_path / "inputs.npz")!r}))
parts = {{
    name: {{k[len(name) + 1:]: v for k, v in data.items() if k.startswith(name + "_")}}
    for name in ("crop", "color", "blur")
}}
crop, color, blur = RandomResizedCrop(24, 24), RandomColorDistortion(), RandomGaussianBlur()

@jax.jit
def views(images, parts):
    x = crop.transform_images(images, parts["crop"])
    x = color.transform_images(x, parts["color"])
    return blur.transform_images(x, parts["blur"])

np.save({str(tmp_path / "jax.npy")!r}, np.asarray(views(data["images"], parts)))
"""
    run_in_subprocess(code, backend="jax")
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), expected, atol=2e-5)
