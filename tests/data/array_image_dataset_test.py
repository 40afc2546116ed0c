"""`ArrayImageDataset` (the NumPy implementation) and `load_arrays`; on JAX without TensorFlow."""

import json

import numpy as np
import pytest

from keras_simclr.data import load_arrays
from keras_simclr.data import load_image_folder
from keras_simclr.data.array_image_dataset import ArrayImageDataset
from keras_simclr.data.shuffled_batches import ShuffledBatches
from tests.conftest import run_in_subprocess


def test_uint8_arrays_round_trip(cifar_images):
    images, labels = cifar_images
    info = load_arrays(images, labels)
    assert info.num_examples == 256
    assert info.num_classes == int(labels.max()) + 1 == 10
    assert info.class_names == [str(i) for i in range(10)]
    assert info.image_size == (32, 32)
    assert isinstance(info, ArrayImageDataset)
    assert info.cache() is info and info.in_memory() is info  # nothing to decode
    np.testing.assert_array_equal(info.labels, labels)
    out_images, out_labels = info.arrays()
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)
    assert out_images.dtype == np.uint8 and out_labels.dtype == np.int32


def test_float_and_integer_arrays_become_uint8(cifar_images):
    images, labels = cifar_images
    floats = images.astype(np.float32) / 255.0
    np.testing.assert_array_equal(load_arrays(floats, labels).arrays()[0], images)
    wide = images.astype(np.int64)
    np.testing.assert_array_equal(load_arrays(wide, labels).arrays()[0], images)
    # Floats are scaled by 255 and rounded to the nearest level.
    floats = images[:8].astype(np.float64) / 255.0
    floats[0, 0, 0] = [0.0, 1.0, 0.5]  # 0.5 * 255 = 127.5 rounds to 128
    floats[0, 0, 1] = [0.2, 0.4, 0.6]  # 51, 102, 153
    got = load_arrays(floats.astype(np.float32)).arrays()[0]
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, 0, 0], [0, 255, 128])
    np.testing.assert_array_equal(got[0, 0, 1], [51, 102, 153])
    np.testing.assert_array_equal(got[1:], images[1:8])
    np.testing.assert_array_equal(got[0, 1:], images[0, 1:])


def test_unlabelled_arrays_and_class_names(cifar_images):
    images, labels = cifar_images
    info = load_arrays(images)
    assert info.num_classes == 0 and info.class_names == []
    np.testing.assert_array_equal(info.arrays()[1], np.zeros(256, np.int32))
    names = [f"class_{i}" for i in range(12)]
    info = load_arrays(images, labels, class_names=names)
    assert info.num_classes == 12 and info.class_names == names


@pytest.mark.parametrize(
    "shape, dtype, match",
    [
        ((32, 32, 3), np.uint8, r"images.shape=\(32, 32, 3\), dtype=uint8"),
        ((4, 32, 32, 1), np.uint8, r"images.shape=\(4, 32, 32, 1\)"),
        ((4, 3, 32, 32), np.float32, r"images.shape=\(4, 3, 32, 32\), dtype=float32"),
        ((0, 32, 32, 3), np.uint8, r"images.shape=\(0, 32, 32, 3\)"),
        ((4, 8, 8, 3), np.bool_, "images.dtype=bool"),
        ((4, 8, 8, 3), np.complex64, "images.dtype=complex64"),
    ],
)
def test_bad_image_arrays_name_what_was_received(shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        load_arrays(np.zeros(shape, dtype))


def test_out_of_range_values_are_errors(cifar_images):
    images, labels = cifar_images
    with pytest.raises(ValueError, match=r"float32 with values in \[0.0, 255.0\]"):
        load_arrays(images.astype(np.float32), labels)  # 0-255 floats: ambiguous
    with pytest.raises(ValueError, match=r"int16 with values in \[-1, 255\]"):
        load_arrays(images.astype(np.int16) - (images == 0), labels)
    with pytest.raises(ValueError, match=r"int32 with values in \[1, 256\]"):
        load_arrays(images.astype(np.int32) + 1, labels)
    nan = images.astype(np.float32) / 255.0
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="nan"):
        load_arrays(nan, labels)


def test_bad_labels_are_errors(cifar_images):
    images, labels = cifar_images
    with pytest.raises(ValueError, match=r"shape \(256,\).*labels.shape=\(255,\)"):
        load_arrays(images, labels[:255])
    with pytest.raises(ValueError, match="dtype=float64"):
        load_arrays(images, labels.astype(np.float64))
    with pytest.raises(ValueError, match="min\\(labels\\)=-1"):
        load_arrays(images, labels - 1)
    with pytest.raises(ValueError, match="3 class_names but labels go up to 9"):
        load_arrays(images, labels, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class_names needs labels"):
        load_arrays(images, class_names=["a"])


def test_take_batches_and_the_checks_of_the_arrays(cifar_folder):
    data = load_image_folder(cifar_folder, "train", in_memory=True)
    first = data.take(30)
    assert first.num_examples == 30 and first.class_names == data.class_names
    np.testing.assert_array_equal(first.images, data.images[:30])
    assert data.take(10_000).num_examples == 200
    batches = data.training_batches(64, seed=0)
    assert isinstance(batches, ShuffledBatches) and len(batches) == 3
    assert batches.seed == 0 and batches.epoch == 0
    with pytest.raises(ValueError, match="count=0"):
        data.take(0)
    with pytest.raises(ValueError, match="uint8"):
        ArrayImageDataset(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.int32), ["a"])
    with pytest.raises(ValueError, match=r"labels.shape=\(3,\)"):
        ArrayImageDataset(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3, np.int32), ["a"])


@pytest.mark.process
def test_imports_without_tensorflow():
    out = run_in_subprocess(
        "import sys, json\n"
        "import keras_simclr.data\n"
        "from keras_simclr.data import ImageDataset, load_arrays, load_image_folder\n"
        "from keras_simclr.data import image_folder_size, labeled_subset\n"
        "import keras_simclr.data.array_image_dataset\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')))\n",
        backend="jax",
    )
    assert json.loads(out.strip().splitlines()[-1]) == []


@pytest.mark.process
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
from keras_simclr.data import load_image_folder

data = load_image_folder({cifar_folder!r}, "train", in_memory=True)
batches = data.training_batches(32, seed=0)  # 200 images: 6 full batches, 8 dropped
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
