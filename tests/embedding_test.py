"""keras_simclr.embed: real CIFAR-10 JPEGs through a tiny ResNet, to .npy, .csv and .parquet.

The oracle decodes each listed file on its own (`tf.io.decode_image`, the
training pipeline's decoder, or Pillow for the NumPy pipeline), scales it to
[0, 1] and calls the encoder in inference mode; every written row must equal
its image's oracle features within 1e-5, in the listed order.
"""

import csv
import os
import shutil
import warnings

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageOps

import keras_simclr
from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.data import BadImagesError
from keras_simclr.data import BadImagesWarning
from keras_simclr.data.resizing import resize_image
from keras_simclr.data.resizing import resize_image_array
from keras_simclr.embedding_writers import embedding_writer
from keras_simclr.export import export_encoder
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import ResNet
from tests.conftest import CIFAR10_CLASSES
from tests.conftest import extract_folder
from tests.conftest import run_in_subprocess


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """ROOT/{train,test}/<class>/000{0,1}.jpg: 20 real JPEGs per split."""
    return extract_folder(tmp_path_factory, "embed_cifar", 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A built ContrastiveModel (tiny ResNet, non-trivial BatchNorm statistics), its
    encoder exported, and the whole model saved as a run's checkpoint.keras."""
    keras.utils.set_random_seed(3)
    model = ContrastiveModel(
        encoder=ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=2, output_dim=16),
        augmenter=SimCLRAugmentation(32, preset="cifar", seed=3),
        temperature=0.5,
    )
    model.build((None, 32, 32, 3))
    rng = np.random.default_rng(0)
    for layer in model.encoder.layers:  # inference mode must use these, as after training
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.uniform(-0.1, 0.1, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
    run = tmp_path_factory.mktemp("run")
    model.save(str(run / "checkpoint.keras"))
    export_encoder(model, str(run / "encoder"))
    return model, str(run)


def _upright_pillow(path):
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _tf_decode(path, size=(32, 32)):
    if path.endswith(".png"):  # lossless: Pillow's pixels are TensorFlow's; EXIF applied
        image = tf.constant(_upright_pillow(path))
    else:  # the CIFAR JPEGs carry no EXIF orientation
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return resize_image(image, size).numpy()


def _pillow_decode(path, size=(32, 32)):
    return resize_image_array(_upright_pillow(path), size)


def _oracle(model, root, relative_paths, decode=_tf_decode):
    images = np.stack([decode(os.path.join(root, *p.split("/"))) for p in relative_paths])
    return keras.ops.convert_to_numpy(model.encoder(images.astype("float32") / 255.0))


def _class_paths(count=2):
    return [f"{name}/{i:04d}.jpg" for name in CIFAR10_CLASSES for i in range(count)]


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("extension", [".npy", ".csv", ".parquet"])
def test_every_format_holds_the_encoder_features_in_listed_order(
    folder, trained, tmp_path, extension
):
    model, run = trained
    root = os.path.join(folder, "train")
    output = str(tmp_path / f"embeddings{extension}")
    # 20 images at batch 8: batches of 8, 8 and 4, each written before the next.
    result = keras_simclr.embed(os.path.join(run, "encoder"), root, output, batch_size=8, verbose=0)
    paths = _class_paths()
    assert result.relative_paths == paths
    assert result.class_names == CIFAR10_CLASSES
    labels = [CIFAR10_CLASSES.index(p.split("/")[0]) for p in paths]
    assert result.labels.tolist() == labels
    assert result.features is None and result.output == output
    expected = _oracle(model, root, paths)
    assert expected.shape == (20, 64) and result.feature_dim == 64
    if extension == ".npy":
        np.testing.assert_allclose(np.load(output), expected, atol=1e-5)
        header, rows = _read_csv(str(tmp_path / "embeddings.index.csv"))
        assert header == ["path", "label", "class_name"]
        assert rows == [[p, str(label), CIFAR10_CLASSES[label]] for p, label in zip(paths, labels)]
    elif extension == ".csv":
        header, rows = _read_csv(output)
        assert header == ["path", "label", "class_name"] + [f"f{i}" for i in range(64)]
        assert [row[:3] for row in rows] == [
            [p, str(label), CIFAR10_CLASSES[label]] for p, label in zip(paths, labels)
        ]
        features = np.array([[float(v) for v in row[3:]] for row in rows], np.float32)
        np.testing.assert_allclose(features, expected, atol=1e-5)
    else:
        file = pq.ParquetFile(output)
        assert file.metadata.num_row_groups == 3  # one per batch
        assert file.schema_arrow.names == ["path", "label", "class_name", "embedding"]
        assert (
            str(file.schema_arrow.field("embedding").type) == "fixed_size_list<element: float>[64]"
        )
        table = file.read()
        assert table.column("path").to_pylist() == paths
        assert table.column("label").to_pylist() == labels
        assert table.column("class_name").to_pylist() == [CIFAR10_CLASSES[i] for i in labels]
        features = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(features, expected, atol=1e-5)


def test_nested_folder_in_memory_from_a_checkpoint_a_run_and_a_model(folder, trained, tmp_path):
    model, run = trained
    # ROOT/{train,test}/<class>/<file>: two levels, so no labels.
    paths = [f"{split}/{p}" for split in ("test", "train") for p in _class_paths()]
    expected = _oracle(model, folder, paths)
    checkpoint_only = tmp_path / "interrupted_run"  # a run folder without encoder/ yet
    checkpoint_only.mkdir()
    shutil.copy(os.path.join(run, "checkpoint.keras"), checkpoint_only)
    sources = [
        os.path.join(run, "checkpoint.keras"),
        run,
        str(checkpoint_only),
        model,
        model.encoder,
    ]
    for source in sources:
        result = keras_simclr.embed(source, folder, batch_size=16, verbose=0)
        assert result.relative_paths == paths
        assert result.labels is None and result.class_names is None and result.output is None
        np.testing.assert_allclose(result.features, expected, atol=1e-5, err_msg=str(source))


@pytest.mark.parametrize("input_pipeline", ["tf", "numpy"])
def test_flat_folder_of_mixed_sizes_is_oriented_and_resized_to_the_encoder_input(
    folder, trained, tmp_path, input_pipeline
):
    model, run = trained
    flat = tmp_path / "flat"
    flat.mkdir()
    train = os.path.join(folder, "train")
    for i, path in enumerate(_class_paths(1)[:5]):
        shutil.copy(os.path.join(train, path), flat / f"img{i}.JPG")
    # 40 x 48 stored, 48 x 40 upright (EXIF orientation 6: rotate 90 degrees clockwise).
    big = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(big).save(flat / "big.png", exif=exif)
    assert _upright_pillow(str(flat / "big.png")).shape == (48, 40, 3)
    (flat / "notes.txt").write_text("not an image")
    result = keras_simclr.embed(
        os.path.join(run, "encoder"),
        str(flat),
        batch_size=4,
        input_pipeline=input_pipeline,
        verbose=0,
    )
    paths = ["big.png"] + [f"img{i}.JPG" for i in range(5)]
    assert result.relative_paths == paths and result.labels is None
    decode = _tf_decode if input_pipeline == "tf" else _pillow_decode
    np.testing.assert_allclose(result.features, _oracle(model, str(flat), paths, decode), atol=1e-5)


def test_unknown_extension_fails_before_anything_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"extension '\.txt'; known: \.npy, \.csv, \.parquet"):
        keras_simclr.embed("no/such/encoder", "no/such/folder", str(tmp_path / "out.txt"))
    assert not os.path.exists(tmp_path / "out.txt")


def test_bad_inputs_name_what_was_received(folder, trained, tmp_path):
    _, run = trained
    encoder = os.path.join(run, "encoder")
    with pytest.raises(FileNotFoundError, match="Received: encoder='no/such/encoder'"):
        keras_simclr.embed("no/such/encoder", folder)
    with pytest.raises(ValueError, match=r"holds no encoder.*Received: encoder="):
        keras_simclr.embed(str(tmp_path), folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No image files"):
        keras_simclr.embed(encoder, str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        keras_simclr.embed(encoder, folder, batch_size=0)


def test_bad_image_is_named_or_skipped(folder, trained, tmp_path):
    model, run = trained
    root = tmp_path / "photos"
    shutil.copytree(os.path.join(folder, "test", "cat"), root / "cats")
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    output = str(tmp_path / "out.parquet")
    with pytest.raises(BadImagesError, match="broken.jpg"):
        keras_simclr.embed(os.path.join(run, "encoder"), str(root), output, verbose=0)
    assert not os.path.exists(output)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = keras_simclr.embed(
            os.path.join(run, "encoder"), str(root), output, skip_bad_images=True, verbose=0
        )
    assert any(issubclass(w.category, BadImagesWarning) for w in caught)
    assert result.relative_paths == ["cats/0000.jpg", "cats/0001.jpg"]
    assert result.labels.tolist() == [0, 0] and result.class_names == ["cats"]
    table = pq.read_table(output)
    assert table.column("path").to_pylist() == result.relative_paths
    expected = _oracle(model, str(root), result.relative_paths)
    np.testing.assert_allclose(
        np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), expected, atol=1e-5
    )


@pytest.mark.parametrize("extension", [".npy", ".csv", ".parquet"])
def test_an_aborted_writer_leaves_no_file(tmp_path, extension):
    output = tmp_path / f"e{extension}"
    writer = embedding_writer(str(output))
    writer.open(num_rows=4, feature_dim=3)
    writer.write(["a.jpg", "b.jpg"], np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="given 2 rows, not the 4 announced"):
        writer.close()
    writer.abort()
    assert sorted(os.listdir(tmp_path)) == []


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A one-convolution encoder, exported: cheap to compile in a JAX child process."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = str(tmp_path_factory.mktemp("small") / "encoder")
    export_encoder(keras.Model(inputs, outputs), path)
    return path


@pytest.mark.process
def test_jax_backend_streams_pillow_decoded_batches(folder, small_export):
    root = os.path.join(folder, "train")
    code = f"""
import os
import sys
import keras
import numpy as np
from PIL import Image
from PIL import ImageOps
import keras_simclr
from keras_simclr.export import load_encoder
result = keras_simclr.embed({small_export!r}, {root!r}, batch_size=8, verbose=0)
images = np.stack([
    np.asarray(Image.open(os.path.join({root!r}, p)).convert("RGB"))
    for p in result.relative_paths
])
expected = keras.ops.convert_to_numpy(load_encoder({small_export!r})(images / 255.0))
print("tensorflow" in sys.modules, len(result.relative_paths),
      float(np.abs(result.features - expected).max()))
"""
    imported_tf, rows, error = run_in_subprocess(code, backend="jax").split()[-3:]
    assert rows == "20" and float(error) < 1e-5
    assert imported_tf == "False"  # the NumPy pipeline: Pillow, no TensorFlow
