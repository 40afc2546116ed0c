"""The TensorFlow-free NumPy input path against the tf.data one, and on JAX."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_simclr.data.image_check import BadImagesError
from keras_simclr.data.numpy_images import NumpyImages
from keras_simclr.data.numpy_images import ShuffledBatches
from keras_simclr.data.numpy_images import decode_images
from keras_simclr.data.numpy_images import image_folder_size
from keras_simclr.data.numpy_images import load_numpy_image_folder
from keras_simclr.data.numpy_images import resize_image_array
from tests.conftest import run_in_subprocess
from tests.data import resize_oracle

# Pillow decodes JPEGs with libjpeg-turbo's accurate integer IDCT (the same
# pixels as tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE"), checked exactly
# below); the tf.data path decodes with TensorFlow's default, the fast integer
# IDCT. On the CIFAR-10 JPEGs the two differ by at most 5 levels (mean under
# 1): that is the tolerance against the tf.data path.
JPEG_DECODER_MAX_DIFF = 6
JPEG_DECODER_MEAN_DIFF = 1.0


@pytest.fixture(scope="module")
def mixed_folder(cifar_folder, tmp_path_factory):
    """The CIFAR folder with a 40 x 48 first image, a 64 x 64 one and a grayscale PNG."""
    root = tmp_path_factory.mktemp("numpy_mixed") / "data"
    shutil.copytree(cifar_folder, root)
    folder = root / "train" / "airplane"
    names = sorted(os.listdir(folder))
    Image.open(folder / names[0]).resize((48, 40)).save(folder / names[0])
    Image.open(folder / names[1]).resize((64, 64)).save(folder / names[1])
    Image.open(folder / names[2]).resize((24, 20)).convert("L").save(folder / "zz_gray.png")
    return str(root)


def _tf_path(root, split, image_size=None):
    from keras_simclr.data import dataset_arrays
    from keras_simclr.data import load_image_folder

    info = load_image_folder(root, split, image_size=image_size)
    images, labels = dataset_arrays(info)
    return info, images, labels


@pytest.mark.parametrize("split", ["train", "test"])
def test_same_examples_as_the_tf_path(cifar_folder, split):
    info, tf_images, tf_labels = _tf_path(cifar_folder, split)
    data = load_numpy_image_folder(cifar_folder, split)
    assert data.class_names == info.class_names and data.num_classes == 10
    assert data.image_size == info.image_size == (32, 32)
    assert data.images.dtype == np.uint8 and data.images.shape == (200, 32, 32, 3)
    assert data.labels.dtype == np.int32
    # The same examples in the same (class-mixed) order, so the same labels.
    np.testing.assert_array_equal(data.labels, tf_labels)
    assert len(set(data.labels[:20].tolist())) > 5
    difference = np.abs(data.images.astype(np.int16) - tf_images.astype(np.int16))
    assert difference.max() <= JPEG_DECODER_MAX_DIFF
    assert difference.mean() < JPEG_DECODER_MEAN_DIFF


def test_pixels_equal_tensorflow_accurate_jpeg_decoding(cifar_folder):
    import tensorflow as tf

    from keras_simclr.data.numpy_images import _list_image_folder

    paths, _, _, _ = _list_image_folder(cifar_folder, "test")
    data = load_numpy_image_folder(cifar_folder, "test")
    for path, image in zip(paths[:50], data.images[:50]):
        expected = tf.io.decode_jpeg(
            tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE"
        ).numpy()
        np.testing.assert_array_equal(image, expected)


def test_mixed_sizes_resize_like_the_tf_path(mixed_folder):
    # Default size: the first image's (train/airplane, first file: 40 x 48).
    assert image_folder_size(mixed_folder, "train") == (40, 48)
    for image_size in [None, 40, (32, 32)]:
        info, tf_images, tf_labels = _tf_path(mixed_folder, "train", image_size)
        data = load_numpy_image_folder(mixed_folder, "train", image_size=image_size)
        assert data.image_size == info.image_size
        assert data.num_examples == info.num_examples == 201
        np.testing.assert_array_equal(data.labels, tf_labels)
        difference = np.abs(data.images.astype(np.int16) - tf_images.astype(np.int16))
        assert difference.max() <= JPEG_DECODER_MAX_DIFF
        assert difference.mean() < JPEG_DECODER_MEAN_DIFF
    # The grayscale PNG (lossless, no JPEG decoder) is read as RGB.
    data = load_numpy_image_folder(mixed_folder, "train", image_size=(20, 24))
    gray = np.asarray(Image.open(os.path.join(mixed_folder, "train", "airplane", "zz_gray.png")))
    matches = [im for im in data.images if np.array_equal(im, np.repeat(gray[..., None], 3, -1))]
    assert len(matches) == 1


def test_resize_matches_tensorflow_and_the_oracle():
    import tensorflow as tf

    from keras_simclr.data.image_utils import resize_image

    rng = np.random.default_rng(0)
    for shape, size in [((32, 32), (40, 40)), ((64, 48), (32, 32)), ((40, 48), (224, 224)),
                        ((375, 500), (224, 224)), ((32, 32), (32, 32))]:
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        ours = resize_image_array(image, size)
        assert ours.shape == size + (3,) and ours.dtype == np.uint8
        expected = resize_image(tf.constant(image), size).numpy()
        # Float32 rounding at .5 may move a pixel by one level.
        assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1
        assert np.abs(ours.astype(int) - resize_oracle.resize(image, size).astype(int)).max() <= 1
    same = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert resize_image_array(same, (8, 8)) is same


def test_decode_images_from_bytes(cifar_images, cifar_npz):
    images, _ = cifar_images
    data = np.load(cifar_npz)
    offsets, blob = data["train_offsets"], data["train_bytes"]
    order = np.random.default_rng(0).permutation(len(offsets) - 1)[:64]
    jpegs = [blob[offsets[i] : offsets[i + 1]].tobytes() for i in order]
    decoded = decode_images(jpegs, num_threads=2)
    # conftest decodes the same JPEGs with Pillow, one by one.
    np.testing.assert_array_equal(decoded, images[:64])
    np.testing.assert_array_equal(decode_images(jpegs, num_threads=1), decoded)
    assert decode_images(jpegs[:3], image_size=48).shape == (3, 48, 48, 3)
    with pytest.raises(ValueError, match="Cannot decode the image image 1"):
        decode_images([jpegs[0], b"not an image"])
    with pytest.raises(ValueError, match="sources=\\[\\]"):
        decode_images([])


def test_batches_are_full_shuffled_and_reproducible():
    images = np.arange(103, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    labels = np.arange(103, dtype=np.int32)
    batches = ShuffledBatches(images, labels, batch_size=10, seed=7)
    assert len(batches) == 10 and batches.num_batches == 10

    def epoch(dataset):
        out = [dataset[i] for i in range(len(dataset))]
        dataset.on_epoch_end()
        return out

    first, second = epoch(batches), epoch(batches)
    for epoch_batches in (first, second):
        assert all(x.shape == (10, 2, 2, 3) and x.dtype == np.uint8 for x, _ in epoch_batches)
        assert all(y.shape == (10,) for _, y in epoch_batches)
        seen = np.concatenate([y for _, y in epoch_batches])
        assert len(set(seen.tolist())) == 100  # no repeats; 3 dropped
        # Images and labels stay paired.
        assert all(np.array_equal(x[:, 0, 0, 0], y) for x, y in epoch_batches)
    first_order = np.concatenate([y for _, y in first])
    second_order = np.concatenate([y for _, y in second])
    assert not np.array_equal(first_order, second_order)  # a new order each epoch
    assert not np.array_equal(first_order, np.sort(first_order))  # shuffled
    # The same seed gives the same sequence of orders; resuming at epoch 1 too.
    again = ShuffledBatches(images, labels, batch_size=10, seed=7)
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch(again)]), first_order)
    resumed = ShuffledBatches(images, labels, batch_size=10, seed=7, initial_epoch=1)
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch(resumed)]), second_order)
    other = ShuffledBatches(images, labels, batch_size=10, seed=8)
    assert not np.array_equal(np.concatenate([y for _, y in epoch(other)]), first_order)
    with pytest.raises(IndexError):
        batches[10]
    # Without labels: (images,); repeat: the index runs on into later epochs.
    endless = ShuffledBatches(images, batch_size=10, seed=7, repeat=True)
    assert endless.num_batches is None
    assert len(endless[0]) == 1
    np.testing.assert_array_equal(
        np.concatenate([endless[i][0][:, 0, 0, 0] for i in range(10, 20)]), second_order
    )


def test_numpy_images_and_take(cifar_folder):
    data = load_numpy_image_folder(cifar_folder, "train")
    first = data.take(30)
    assert first.num_examples == 30 and first.class_names == data.class_names
    np.testing.assert_array_equal(first.images, data.images[:30])
    assert data.take(10_000).num_examples == 200
    batches = data.batches(64, seed=0)
    assert isinstance(batches, ShuffledBatches) and len(batches) == 3
    with pytest.raises(ValueError, match="count=0"):
        data.take(0)
    with pytest.raises(ValueError, match="uint8"):
        NumpyImages(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.int32), ["a"])


def test_errors_match_the_tf_path(cifar_folder, tmp_path):
    from keras_simclr.data import load_image_folder

    def messages(*args, **kwargs):
        caught = []
        for load in (load_image_folder, load_numpy_image_folder):
            with pytest.raises((FileNotFoundError, ValueError)) as info:
                load(*args, **kwargs)
            caught.append((info.type, str(info.value)))
        assert caught[0] == caught[1]
        return caught[1]

    assert messages(str(tmp_path / "nowhere"), "train")[0] is FileNotFoundError
    os.makedirs(tmp_path / "empty")
    assert "no sub-folders" in messages(str(tmp_path / "empty"), "train")[1]
    error, message = messages(cifar_folder, "validation")
    assert error is FileNotFoundError and "['test', 'train']" in message
    os.makedirs(tmp_path / "data" / "train" / "cat")
    assert "holds no images" in messages(str(tmp_path / "data"), "train")[1]
    loose = tmp_path / "loose" / "train"
    os.makedirs(loose)
    for i, name in enumerate(sorted(os.listdir(os.path.join(cifar_folder, "train", "cat")))[:3]):
        shutil.copy(os.path.join(cifar_folder, "train", "cat", name), loose / f"{i}.jpg")
    assert "holds 3 images directly" in messages(str(tmp_path / "loose"), "train")[1]
    assert "Received: image_size=" in messages(cifar_folder, "train", image_size=0)[1]
    with pytest.raises(ValueError, match="batch_size=201.*num_examples=200"):
        ShuffledBatches(np.zeros((200, 2, 2, 3), np.uint8), batch_size=201)
    broken = tmp_path / "broken" / "train" / "cat"
    os.makedirs(broken)
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    error, message = messages(str(tmp_path / "broken"), "train")
    assert issubclass(error, BadImagesError)
    assert "a.jpg" in message and "cannot identify" in message


def test_imports_without_tensorflow():
    out = run_in_subprocess(
        "import sys, json\n"
        "import keras_simclr.data.numpy_images\n"
        "import keras_simclr.data\n"
        "from keras_simclr.data import ShuffledBatches, load_numpy_image_folder\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')))\n",
        backend="jax",
    )
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_jax_fit_reads_no_tensorflow_and_compiles_the_step_once(cifar_folder):
    # Counts the traces of the model's train step (Python code in it runs only
    # while JAX traces) and the XLA compilations (a jax.monitoring event) in
    # the epochs after the first: a batch of another shape or dtype, or a
    # value that changes the traced program, would trace and compile again.
    code = f"""
import json, sys
import jax
import keras
import keras_simclr as ks
from keras_simclr.data import load_numpy_image_folder

data = load_numpy_image_folder({cifar_folder!r}, "train")
batches = data.batches(32, seed=0)  # 200 images: 6 full batches, 8 dropped
compiles = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kwargs: compiles.append(event)
    if event == "/jax/core/compile/backend_compile_duration" else None)
# No keras.utils.set_random_seed: on Keras 3.15 it imports TensorFlow (to
# seed it) whenever TensorFlow is installed; the layers take seeds instead.
model = ks.models.ContrastiveModel(
    encoder=ks.models.create_encoder("resnet18_cifar", 32, width_multiplier=0.125),
    projection_head=ks.models.ProjectionHead(num_layers=2, output_dim=16),
    augmenter=ks.augment.SimCLRAugmentation(32, preset="cifar", seed=0),
    temperature=0.5, num_classes=10)
model.compile(optimizer=ks.optimizers.LARS(0.1))
traces = []
train_step = model.train_step
def counting_train_step(*args, **kwargs):
    traces.append(1)
    return train_step(*args, **kwargs)
model.train_step = counting_train_step
per_epoch = []
record = keras.callbacks.LambdaCallback(
    on_epoch_end=lambda epoch, logs: per_epoch.append(len(compiles)))
history = model.fit(batches, epochs=3, verbose=0, shuffle=False, callbacks=[record])
print(json.dumps({{
    "traces": len(traces), "compiles_per_epoch": per_epoch,
    "iterations": int(model.optimizer.iterations.numpy()),
    "loss": history.history["loss"],
    "tensorflow": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
}}))
"""
    result = json.loads(run_in_subprocess(code, backend="jax").strip().splitlines()[-1])
    assert result["iterations"] == 18
    assert result["traces"] == 1
    first, second, third = result["compiles_per_epoch"]
    assert first >= 1  # the listener sees the compilations of the first epoch
    assert second == first and third == first
    assert all(np.isfinite(result["loss"]))
    assert result["tensorflow"] == []
