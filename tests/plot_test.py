"""keras_simclr.plot: the augmentation grid, the training curves, their PNGs and callback."""

import json
import math
import os

import keras
import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_simclr import plot
from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.evaluation import KNNMonitor
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from tests.conftest import run_in_subprocess

# log.csv as `keras-simclr pretrain` writes it: strings, kNN every other epoch.
LOG_ROWS = [
    {"epoch": "0", "loss": "5.2", "contrastive_accuracy": "0.10", "knn_accuracy": "nan"},
    {"epoch": "1", "loss": "4.9", "contrastive_accuracy": "0.20", "knn_accuracy": "0.31"},
    {"epoch": "2", "loss": "4.7", "contrastive_accuracy": "0.25", "knn_accuracy": ""},
    {"epoch": "3", "loss": "4.6", "contrastive_accuracy": "0.30", "knn_accuracy": "0.36"},
]


def _pixels(path):
    """(height, width) of a PNG read back with matplotlib."""
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape[:2]


def _size_in_pixels(figure, dpi=100):
    width, height = figure.get_size_inches() * dpi
    return round(height), round(width)


def _drawn(figure):
    """The arrays drawn in the grid's cells, as a (rows, columns) nested list."""
    axes = np.array(figure.axes).reshape(3, -1)
    return [[np.asarray(axis.get_images()[0].get_array()) for axis in row] for row in axes]


def _line(axis):
    return [tuple(point) for point in axis.get_lines()[0].get_xydata()]


def _seed_states(augmenter):
    return [
        keras.ops.convert_to_numpy(v).copy()
        for v in augmenter.variables
        if v.path.endswith("seed_generator_state")
    ]


def test_augmentation_grid_draws_each_image_and_two_different_views(cifar_images):
    images = cifar_images[0][:6]
    augmenter = SimCLRAugmentation(32, preset="cifar", seed=3)
    augmenter(images[:2], training=True)  # some draws already made
    before = _seed_states(augmenter)
    figure = plot.augmentation_grid(images, augmenter, num_images=5, seed=1)
    assert isinstance(figure, Figure)
    # The augmenter's own streams are put back: training draws as before.
    for state, saved in zip(_seed_states(augmenter), before):
        np.testing.assert_array_equal(state, saved)
    sources, view_a, view_b = _drawn(figure)
    assert len(sources) == len(view_a) == len(view_b) == 5
    sources, view_a, view_b = np.stack(sources), np.stack(view_a), np.stack(view_b)
    np.testing.assert_array_equal(sources, images[:5])
    assert view_a.shape == view_b.shape == (5, 32, 32, 3)
    assert 0.0 <= min(view_a.min(), view_b.min()) and max(view_a.max(), view_b.max()) <= 1.0
    # The augmenter was applied (one view may come out close to its image,
    # not all of them), and it drew two different views of every image.
    source = images[:5] / 255.0
    for view in (view_a, view_b):
        assert np.abs(view - source).mean() > 0.05
        assert all(np.abs(view - source).max(axis=(1, 2, 3)) > 1e-3)
    assert all(np.abs(view_a - view_b).mean(axis=(1, 2, 3)) > 0.01)
    # The views depend on `seed` alone.
    again = _drawn(plot.augmentation_grid(images, augmenter, num_images=5, seed=1))
    other = _drawn(plot.augmentation_grid(images, augmenter, num_images=5, seed=2))
    np.testing.assert_array_equal(again[1][0], view_a[0])
    assert not np.array_equal(other[1][0], view_a[0])


def test_augmentation_grid_takes_unit_floats_and_caps_the_count(cifar_images):
    images = cifar_images[0][:3].astype("float32") / 255.0
    figure = plot.augmentation_grid(images, SimCLRAugmentation(32, preset="cifar"), num_images=8)
    sources, _, _ = _drawn(figure)
    assert len(sources) == 3
    np.testing.assert_allclose(sources[2], images[2])


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (np.full((2, 8, 8, 3), 2.0, "float32"), {}, "max=2.0"),
        (np.zeros((8, 8, 3), "uint8"), {}, r"images.shape=\(8, 8, 3\)"),
        (np.zeros((2, 8, 8, 3), "int64"), {}, "dtype=int64"),
        (np.zeros((2, 8, 8, 3), "uint8"), {"num_images": 0}, "num_images=0"),
    ],
)
def test_augmentation_grid_refuses_bad_input(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot.augmentation_grid(images, SimCLRAugmentation(8), **kwargs)


def test_save_augmentations_writes_a_png_of_the_figure(cifar_images, tmp_path):
    path = tmp_path / "run" / "augmentations.png"  # the folder is created
    augmenter = SimCLRAugmentation(32, preset="cifar")
    assert plot.save_augmentations(str(path), cifar_images[0], augmenter, num_images=4) == str(path)
    figure = plot.augmentation_grid(cifar_images[0], augmenter, num_images=4)
    assert path.stat().st_size > 10_000
    assert _pixels(path) == _size_in_pixels(figure)
    assert os.listdir(path.parent) == ["augmentations.png"]  # no temporary left


def test_training_curves_skip_epochs_without_knn():
    figure = plot.training_curves(LOG_ROWS)
    loss, contrastive, knn = figure.axes
    assert _line(loss) == [(1, 5.2), (2, 4.9), (3, 4.7), (4, 4.6)]
    assert _line(contrastive) == [(1, 0.1), (2, 0.2), (3, 0.25), (4, 0.3)]
    # Epochs 1 and 3 were not evaluated: skipped, never drawn as 0.
    assert _line(knn) == [(2, 0.31), (4, 0.36)]
    assert knn.get_xlim() == (0.5, 4.5)
    assert "0.36" in knn.get_title()
    # The random initial encoder's kNN accuracy: a dotted line to beat.
    knn = plot.training_curves(LOG_ROWS, knn_at_init="0.12").axes[2]
    baseline = knn.get_lines()[1]
    assert baseline.get_linestyle() == ":" and list(baseline.get_ydata()) == [0.12, 0.12]
    assert [text.get_text() for text in knn.get_legend().get_texts()] == [
        "trained encoder",
        "random initial encoder",
    ]


def test_training_curves_take_a_history_and_its_dict():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    history = model.fit(x, y, epochs=4, initial_epoch=1, verbose=0)
    for given in (history, history.history):
        loss, contrastive, knn = plot.training_curves(given).axes
        first = 2 if given is history else 1  # a dict does not know initial_epoch
        assert [point[0] for point in _line(loss)] == [first, first + 1, first + 2]
        np.testing.assert_allclose([p[1] for p in _line(loss)], history.history["loss"])
        assert not contrastive.get_lines() and not knn.get_lines()  # "not logged"
    validation = {"loss": [3.0, 2.0], "val_loss": [3.5, math.nan]}
    loss = plot.training_curves(validation).axes[0]
    assert [tuple(line.get_xydata()[-1]) for line in loss.get_lines()] == [(2, 2.0), (1, 3.5)]


@pytest.mark.parametrize(
    "history, message",
    [
        ({"loss": [1.0, 0.9, 0.8], "knn_accuracy": [0.3]}, "holds 1 values for 3 epochs"),
        ({}, "no epochs"),
        ("log.csv", "Received: history of type str"),
    ],
)
def test_training_curves_refuse_what_they_cannot_place(history, message):
    with pytest.raises(ValueError, match=message):
        plot.training_curves(history)
    with pytest.raises(ValueError, match="Received: knn_at_init=1.5"):
        plot.TrainingCurves("curves.png", knn_at_init=1.5)


def test_save_training_curves_writes_a_png(tmp_path):
    path = str(tmp_path / "curves.png")
    plot.save_training_curves(path, LOG_ROWS, dpi=50)
    assert os.path.getsize(path) > 5_000
    assert _pixels(path) == _size_in_pixels(plot.training_curves(LOG_ROWS), dpi=50)


def _tiny_model():
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, strides=2),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model = ContrastiveModel(
        encoder=encoder,
        projection_head=ProjectionHead(output_dim=8),
        augmenter=SimCLRAugmentation(16, preset="cifar", seed=0),
        temperature=0.5,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


@pytest.mark.slow
def test_training_curves_callback_rewrites_the_png_after_every_epoch(cifar_images, tmp_path):
    images, labels = cifar_images
    images, labels = images[:64, ::2, ::2], labels[:64]  # 16x16
    path = str(tmp_path / "curves.png")
    # A resumed run: epoch 0 comes from log.csv, epochs 1-3 are trained now.
    curves = plot.TrainingCurves(path, history=LOG_ROWS[:1], knn_at_init=0.1)
    seen = []

    def read_back(epoch, logs):
        with open(path, "rb") as f:
            seen.append((epoch, f.read(), [dict(row) for row in curves.rows]))

    knn = KNNMonitor((images, labels), (images, labels), num_classes=10, k=5, every_n_epochs=2)
    _tiny_model().fit(
        images,
        batch_size=32,
        epochs=4,
        initial_epoch=1,
        verbose=0,
        callbacks=[knn, curves, keras.callbacks.LambdaCallback(on_epoch_end=read_back)],
    )
    assert [epoch for epoch, _, _ in seen] == [1, 2, 3]
    pictures = [picture for _, picture, _ in seen]
    assert all(picture.startswith(b"\x89PNG") for picture in pictures)
    assert len(set(pictures)) == 3  # rewritten after every epoch
    assert [row["epoch"] for row in seen[-1][2]] == [0, 1, 2, 3]
    # KNNMonitor ran before TrainingCurves at epochs 2 and 4 (1-based) and the last.
    knn_line = _line(plot.training_curves(seen[-1][2]).axes[2])
    assert knn_line == [(2, pytest.approx(knn.results[2])), (4, pytest.approx(knn.results[4]))]
    # The loss of epoch 1 (1-based) is the log's row.
    assert _line(plot.training_curves(seen[-1][2]).axes[0])[0] == (1, 5.2)
    assert os.listdir(tmp_path) == ["curves.png"]


_MIRRORED_VIEWS = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.plot.augmentation_grid import draw_views
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    mirrored = SimCLRAugmentation(32, preset="cifar", seed=0)
    mirrored.build((None, 32, 32, 3))
plain = SimCLRAugmentation(32, preset="cifar", seed=0)
images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
before = [v.numpy().tolist() for v in mirrored.variables]
views, expected = draw_views(images, mirrored, seed=5), draw_views(images, plain, seed=5)
print(json.dumps({
    "variable": type(mirrored.variables[0].value).__name__,
    "difference": max(float(np.abs(a - b).max()) for a, b in zip(views, expected)),
    "restored": before == [v.numpy().tolist() for v in mirrored.variables],
}))
"""


@pytest.mark.process
def test_views_of_an_augmenter_built_under_a_mirrored_strategy():
    # The CLI builds the recipe (its augmenter included) in the strategy's scope.
    result = json.loads(
        run_in_subprocess(_MIRRORED_VIEWS, backend="tensorflow").strip().splitlines()[-1]
    )
    assert result == {"variable": "MirroredVariable", "difference": 0.0, "restored": True}
