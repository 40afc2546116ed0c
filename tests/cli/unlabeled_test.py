"""`keras-simclr pretrain` on unlabelled folders (flat, nested) and with `--eval_folder`.

In process, through the real flag definitions and the CLI's error contract;
tiny runs: width 0.125, one epoch, about 100 real CIFAR-10 JPEGs, batch 32.
"""

import json
import os

import numpy as np
import pytest
from absl import flags

from keras_simclr.cli import pretrain
from keras_simclr.cli.data_sources import knn_skip_reason
from keras_simclr.cli.data_sources import load_training_data
from keras_simclr.cli.errors import run_subcommand
from keras_simclr.cli.flag_config import config_from_flags
from keras_simclr.cli.pretrain_flags import resolve_input_pipeline
from tests.data.jpeg_files import cifar_jpegs
from tests.data.jpeg_files import flat_names
from tests.data.jpeg_files import nested_names
from tests.data.jpeg_files import write_files

TINY = [
    "--batch_size=32",
    "--epochs=1",
    "--width_multiplier=0.125",
    "--projection_dim=16",
    "--knn_k=20",
    "--verbose=0",
]


def _config(*argv):
    """The config `keras-simclr pretrain ARGV` runs with (the real flag definitions)."""
    values = flags.FlagValues()
    pretrain.define_flags(values)
    values(["keras-simclr pretrain", *argv])
    config = config_from_flags(pretrain.define_flags, values)
    return config


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """96 real CIFAR-10 JPEGs in a flat and in a nested folder (no splits, no classes)."""
    jpegs, _ = cifar_jpegs(96)
    root = tmp_path_factory.mktemp("unlabelled")
    return {
        "flat": write_files(root / "flat", flat_names(96), jpegs),
        "nested": write_files(root / "nested", nested_names(96), jpegs),
    }


@pytest.mark.parametrize("layout, train_examples", [("flat", None), ("nested", 64)])
def test_training_data_of_an_unlabelled_folder(folders, layout, train_examples):
    argv = ["--image_folder", folders[layout], "--output_dir", "unused", *TINY]
    if train_examples:
        argv.append(f"--train_examples={train_examples}")
    config = _config(*argv)
    config["input_pipeline"] = resolve_input_pipeline(config)
    data = load_training_data(config)
    assert data.train.num_examples == (train_examples or 96)
    assert data.train.num_classes == 0 and data.probe_classes is None
    assert data.knn_bank is None and data.knn_queries is None
    assert data.image_size == 32
    images, labels = next(iter(data.batches))
    assert tuple(images.shape) == (32, 32, 32, 3) and not np.any(labels)
    reason = knn_skip_reason(config)
    assert reason.startswith("kNN evaluation skipped: " + folders[layout])
    assert "--eval_folder ROOT with ROOT/{train,test}/<class>/" in reason


def test_training_data_of_the_split_layout_and_eval_folder(folders, tiny_folder):
    config = _config("--image_folder", tiny_folder, "--output_dir", "x", *TINY, "--batch_size=8")
    config["input_pipeline"] = "tf"
    data = load_training_data(config)
    # The split layout, as before: the train split is trained on and is the bank.
    assert data.train.num_examples == 30 and data.probe_classes == 10
    assert data.knn_bank is data.train and data.knn_queries.num_examples == 30
    config = _config(
        "--image_folder", folders["flat"], "--eval_folder", tiny_folder, "--output_dir", "x", *TINY
    )
    config["input_pipeline"] = "numpy"
    data = load_training_data(config)
    assert data.train.num_examples == 96 and data.probe_classes is None
    assert data.knn_bank.num_examples == 30 and data.knn_bank.num_classes == 10
    assert data.knn_queries.num_examples == 30 and data.knn_queries.image_size == (32, 32)
    np.testing.assert_array_equal(np.bincount(data.knn_queries.read_labels()), [3] * 10)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_unlabelled_folder_pretrains_and_exports(folders, layout, tmp_path, capsys):
    import tensorflow as tf

    output = str(tmp_path / "run")
    metrics = pretrain.run_pretraining(
        _config("--image_folder", folders[layout], "--output_dir", output, *TINY)
    )
    out = capsys.readouterr().out
    assert (
        knn_skip_reason(
            {"image_folder": folders[layout], "train_split": "train", "eval_split": "test"}
        )
        in out
    )
    assert metrics["train_examples"] == 96 and metrics["optimizer_iterations"] == 3
    assert metrics["knn_accuracy"] is None and metrics["knn_accuracy_per_epoch"] == {}
    assert np.isfinite(metrics["loss_per_epoch"][0])
    with open(os.path.join(output, "metrics.json")) as file:
        assert json.load(file)["knn_accuracy"] is None
    # The exported encoder reloads and embeds the folder's images.
    encoder = tf.saved_model.load(os.path.join(output, "encoder"))
    images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype("float32")
    features = encoder.serve(tf.constant(images)).numpy()
    assert features.shape[0] == 4 and features.shape[1] > 0 and np.isfinite(features).all()


@pytest.mark.slow
def test_eval_folder_evaluates_knn(folders, tiny_folder, tmp_path, capsys):
    output = str(tmp_path / "run")
    metrics = pretrain.run_pretraining(
        _config(
            "--image_folder",
            folders["nested"],
            "--eval_folder",
            tiny_folder,
            "--output_dir",
            output,
            *TINY,
        )
    )
    assert "kNN evaluation skipped" not in capsys.readouterr().out
    with open(os.path.join(output, "metrics.json")) as file:
        written = json.load(file)
    assert written["train_examples"] == 96
    assert 0.0 <= written["knn_accuracy"] <= 1.0
    assert written["knn_accuracy"] == metrics["knn_accuracy"]
    assert set(written["knn_accuracy_per_epoch"]) == {"1"}
    assert 0.0 <= written["knn_accuracy_at_init"] <= 1.0


def _one_error_line(capsys, config):
    with pytest.raises(SystemExit) as exit_info:
        run_subcommand(pretrain.run_pretraining, config, verbose=1)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_empty_or_image_less_folder_is_one_error_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    os.makedirs(empty)
    output = tmp_path / "run"
    line = _one_error_line(
        capsys, _config("--image_folder", str(empty), "--output_dir", str(output), *TINY)
    )
    assert f"Received: root={str(empty)!r}" in line and "it holds no files" in line
    write_files(tmp_path / "docs", ["a.txt", "b/c.pdf"], [b"1", b"2"])
    line = _one_error_line(
        capsys,
        _config("--image_folder", str(tmp_path / "docs"), "--output_dir", str(output), *TINY),
    )
    assert "No image files (.jpg, .jpeg, .png, .bmp, .gif, .webp" in line
    assert "2 other files (1 .txt, 1 .pdf)" in line
    line = _one_error_line(
        capsys,
        _config("--image_folder", str(tmp_path / "missing"), "--output_dir", str(output), *TINY),
    )
    assert "does not exist" in line and "missing" in line
    assert not os.path.exists(output / "config.json")


def test_eval_folder_without_the_split_layout_is_one_error_line(folders, tmp_path, capsys):
    for eval_folder, match in [
        (str(tmp_path / "missing"), "--eval_folder does not exist"),
        (folders["flat"], "--eval_folder has no train/<class>/ folders (--train_split)"),
    ]:
        config = _config(
            "--image_folder",
            folders["flat"],
            "--eval_folder",
            eval_folder,
            "--output_dir",
            str(tmp_path / "run"),
            *TINY,
        )
        line = _one_error_line(capsys, config)
        assert match in line and f"Received: eval_folder={eval_folder!r}" in line


def test_class_folders_without_splits_train_the_probe_but_skip_knn(tmp_path):
    # ROOT/<class>/*: not the split layout, so no kNN (no held-out queries);
    # the labels the layout gives still reach the online probe.
    jpegs, _ = cifar_jpegs(40)
    root = write_files(tmp_path, [f"{('cat', 'dog')[i % 2]}/{i}.jpg" for i in range(40)], jpegs)
    config = _config("--image_folder", root, "--output_dir", "x", *TINY)
    config["input_pipeline"] = "tf"
    data = load_training_data(config)
    assert data.train.num_examples == 40 and data.probe_classes == 2
    assert data.knn_bank is None and data.knn_queries is None
