"""RandomCropFlip: the padded per-image crop and flip of the supervised evaluations."""

import keras
import numpy as np

from keras_simclr.evaluation.random_crop_flip import RandomCropFlip


def test_crop_flip_cuts_a_padded_window_per_image_and_mirrors_some():
    rng = np.random.default_rng(0)
    count, size, pad = 64, 6, 2
    # Every pixel value is unique and non-zero, so a window identifies its offset.
    images = (1 + rng.permutation(count * size * size * 3)).reshape(count, size, size, 3)
    images = images.astype("float32")
    layer = RandomCropFlip(padding=pad, seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    out = keras.ops.convert_to_numpy(layer(images, training=True))
    assert out.shape == images.shape
    padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    found = []
    for i in range(count):
        matches = [
            (top, left, flip)
            for top in range(2 * pad + 1)
            for left in range(2 * pad + 1)
            for flip in (False, True)
            if np.array_equal(
                out[i],
                padded[i, top : top + size, left : left + size][:, ::-1]
                if flip
                else padded[i, top : top + size, left : left + size],
            )
        ]
        assert len(matches) == 1, (i, matches)
        found.append(matches[0])
    # Drawn per image: many offsets (25 possible) and both flip states.
    assert len({(top, left) for top, left, _ in found}) >= 12
    flips = sum(flip for _, _, flip in found)
    assert 16 <= flips <= 48, flips


def test_same_seed_same_crops_and_config_round_trip(tmp_path):
    images = np.random.default_rng(1).uniform(size=(8, 6, 6, 3)).astype("float32")
    a, b = RandomCropFlip(padding=2, seed=5), RandomCropFlip(padding=2, seed=5)
    out_a = keras.ops.convert_to_numpy(a(images, training=True))
    np.testing.assert_array_equal(out_a, keras.ops.convert_to_numpy(b(images, training=True)))
    config = a.get_config()
    assert config["padding"] == 2 and config["seed"] == 5
    assert RandomCropFlip.from_config(config).get_config() == config
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, RandomCropFlip(padding=2, seed=5, name="crop_flip")(inputs))
    path = str(tmp_path / "crop.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("crop_flip"), RandomCropFlip)


def test_files_naming_the_former_private_class_still_load():
    # Fine-tuned models saved before the class was public name it so.
    layer = keras.saving.deserialize_keras_object(
        {
            "module": "keras_simclr.evaluation.linear_eval",
            "class_name": "_RandomCropFlip",
            "registered_name": "keras_simclr>_RandomCropFlip",
            "config": {"name": "crop_flip", "padding": 3, "seed": 1, "trainable": True},
        }
    )
    assert isinstance(layer, RandomCropFlip)
    assert (layer.padding, layer.seed, layer.name) == (3, 1, "crop_flip")
