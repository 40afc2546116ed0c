import csv
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import matplotlib.image
import numpy as np
import pytest

import keras_simclr
from keras_simclr.cli import pretrain
from keras_simclr.cli.flag_config import flag_names
from keras_simclr.cli.main import verbose_level
from keras_simclr.cli.pretrain_flags import resolve_input_pipeline
from tests.conftest import REPO_ROOT


def _config(**overrides):
    config = {
        "method": "simclr",
        "queue_size": 65536,
        "moco_momentum": 0.999,
        "shuffle_bn_splits": 8,
        "micro_batch_size": None,
        "memory_size": None,
        "memory_momentum": None,
        "dataset": None,
        "tfds_data_dir": None,
        "image_folder": None,
        "eval_folder": None,
        "input_pipeline": "auto",
        "train_split": "train",
        "eval_split": "test",
        "train_examples": None,
        "model": "resnet18_cifar",
        "width_multiplier": 0.125,
        "image_size": None,
        "augmentation": "auto",
        "batch_size": 64,
        "epochs": 2,
        "learning_rate": None,
        "learning_rate_scaling": "linear",
        "temperature": None,
        "optimizer": "lars",
        "momentum": 0.9,
        "weight_decay": 1e-6,
        "warmup_epochs": None,
        "projection_dim": 32,
        "head_layers": 2,
        "output_dir": None,
        "resume": True,
        "seed": 0,
        "mixed_precision": False,
        "deterministic": False,
        "skip_bad_images": False,
        "knn_every": 1,
        "knn_k": 200,
        "knn_temperature": 0.1,
        "steps_per_execution": 1,
        "tpu": None,
        "collective_timeout": 600.0,
        "verbose": 0,
    }
    config.update(overrides)
    assert set(config) == flag_names(pretrain.define_flags)
    return config


@pytest.mark.slow
def test_pretrain_end_to_end_then_resume(cifar_folder, tmp_path):
    output = str(tmp_path / "run")
    metrics = pretrain.run_pretraining(
        _config(image_folder=cifar_folder, output_dir=output, knn_every=2)
    )
    for name in ("checkpoint.keras", "config.json", "log.csv", "metrics.json"):
        assert os.path.isfile(os.path.join(output, name)), name
    assert os.listdir(os.path.join(output, "tensorboard"))
    assert os.path.isfile(os.path.join(output, "encoder", "saved_model.pb"))
    assert os.path.isfile(os.path.join(output, "encoder", "encoder.keras"))
    # The pictures: augmented views at the start, curves after every epoch.
    for name in ("augmentations.png", "curves.png"):
        path = os.path.join(output, name)
        assert os.path.getsize(path) > 10_000, name
        assert matplotlib.image.imread(path).shape[2] == 4, name  # a valid RGBA PNG
    curves_written = os.stat(os.path.join(output, "curves.png")).st_mtime_ns
    with open(os.path.join(output, "metrics.json")) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(metrics))
    # 200 images at batch 64: 3 steps per epoch.
    assert written["epochs"] == 2 and written["optimizer_iterations"] == 6
    assert 0.0 <= written["knn_accuracy"] <= 1.0
    # The random initial encoder's kNN, evaluated before the first step.
    assert 0.0 <= written["knn_accuracy_at_init"] <= 1.0
    assert set(written["knn_accuracy_per_epoch"]) == {"2"}
    assert written["images_per_second"] > 0
    with open(os.path.join(output, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    # kNN ran at epoch 2 only; the CSV still has the column from epoch 1 on.
    assert rows[0]["knn_accuracy"] == "nan"
    assert float(rows[1]["knn_accuracy"]) == pytest.approx(written["knn_accuracy"])
    assert all(np.isfinite(float(row["loss"])) and float(row["loss"]) > 1.0 for row in rows)

    checkpoint_weights = [
        np.array(w)
        for w in keras.saving.load_model(os.path.join(output, "checkpoint.keras")).weights
    ]
    resumed = pretrain.run_pretraining(
        _config(image_folder=cifar_folder, output_dir=output, epochs=3)
    )
    assert resumed["initial_epoch"] == 2
    # A resumed run keeps the baseline its first run recorded (not re-evaluated).
    assert resumed["knn_accuracy_at_init"] == written["knn_accuracy_at_init"]
    # The optimizer's step count continued from 6: one more epoch of 3 steps.
    assert resumed["optimizer_iterations"] == 9
    # The whole run's record: kNN of epochs 2 (first run) and 3 (resumed).
    assert set(resumed["knn_accuracy_per_epoch"]) == {"2", "3"}
    assert len(resumed["loss_per_epoch"]) == 3
    with open(os.path.join(output, "log.csv")) as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]
    # Redrawn after the resumed epoch (with epochs 1-2 from log.csv).
    assert os.stat(os.path.join(output, "curves.png")).st_mtime_ns > curves_written
    # Training went on from the saved weights, not from a fresh start.
    model = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert len(model.weights) == len(checkpoint_weights)
    assert any(not np.allclose(np.array(a), b) for a, b in zip(model.weights, checkpoint_weights))


@pytest.mark.slow
def test_non_finite_loss_names_epoch_and_step_and_keeps_the_good_checkpoint(
    cifar_folder, tmp_path, monkeypatch
):
    output = str(tmp_path / "run")
    # One weight turns NaN at the start of epoch 2: its first step's loss is NaN.
    monkeypatch.setenv("KERAS_SIMCLR_FAULTS", "nan_weights@2")
    with pytest.raises(pretrain.PretrainError, match=r"epoch 2, step 1.*checkpoint.keras"):
        pretrain.run_pretraining(
            _config(image_folder=cifar_folder, output_dir=output, epochs=2, knn_every=0)
        )
    model = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert int(model.optimizer.iterations) == 3  # epoch 1's
    assert all(np.isfinite(np.array(w)).all() for w in model.weights)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"image_folder": "/nonexistent/folder"}, FileNotFoundError, "/nonexistent/folder"),
        ({"eval_split": "validation"}, FileNotFoundError, r"'validation'.*\['test', 'train'\]"),
        ({"batch_size": 512}, ValueError, "batch_size=512"),
        ({"model": "resnet19"}, ValueError, "resnet19"),
        ({"temperature": 0.0}, ValueError, "temperature=0.0"),
        ({"image_folder": None}, ValueError, "exactly one of --dataset and --image_folder"),
        ({"method": "byol"}, ValueError, "method='byol'"),
        ({"method": "moco_v2", "queue_size": 32}, ValueError, "queue_size=32, batch_size=64"),
        (
            {"method": "moco_v2", "shuffle_bn_splits": 5},
            ValueError,
            "shuffle_bn_splits=5, batch_size=64",
        ),
    ],
)
def test_bad_input_fails_before_training(cifar_folder, tmp_path, overrides, error, match):
    output = str(tmp_path / "run")
    config = _config(image_folder=cifar_folder, output_dir=output)
    config.update(overrides)
    with pytest.raises(error, match=match):
        pretrain.run_pretraining(config)
    assert not os.path.exists(os.path.join(output, "checkpoint.keras"))


def test_empty_split_folder_is_an_error(tmp_path):
    os.makedirs(tmp_path / "data" / "train" / "cat")
    os.makedirs(tmp_path / "data" / "test" / "cat")
    with pytest.raises(ValueError, match="holds no images"):
        pretrain.run_pretraining(
            _config(image_folder=str(tmp_path / "data"), output_dir=str(tmp_path / "run"))
        )


@pytest.mark.slow
def test_mixed_image_sizes_are_resized(cifar_folder, tmp_path):
    from PIL import Image

    root = tmp_path / "mixed"
    shutil.copytree(cifar_folder, root)
    first = sorted((root / "train" / "airplane").iterdir())[0]
    Image.open(first).resize((48, 40)).save(first)
    metrics = pretrain.run_pretraining(
        _config(image_folder=str(root), output_dir=str(tmp_path / "run"), epochs=1, knn_every=0)
    )
    # The first image decides the size unless --image_size is given.
    assert metrics["image_size"] == 40


@pytest.mark.process
def test_console_script_reports_bad_flags_clearly(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_simclr.cli.main",
            "pretrain",
            "--model",
            "nonsense",
            "--image_folder",
            str(tmp_path),
            "--output_dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode != 0
    assert "nonsense" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "keras_simclr.cli.main", "nosuchcommand"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 2 and "pretrain" in result.stderr


@pytest.mark.slow
def test_moco_v2_resume_keeps_the_queue_and_key_encoder(cifar_folder, tmp_path):
    output = str(tmp_path / "moco")
    config = _config(
        image_folder=cifar_folder,
        output_dir=output,
        method="moco_v2",
        queue_size=1000,
        optimizer=None,
        weight_decay=None,
        epochs=1,
        knn_every=0,
    )
    metrics = pretrain.run_pretraining(config)
    assert metrics["method"] == "moco_v2" and metrics["preset"] == "moco_v2"
    assert metrics["temperature"] == 0.2
    # MoCo v2's SGD lr 0.03 at batch 256, scaled to 64.
    assert metrics["peak_learning_rate"] == pytest.approx(0.03 * 64 / 256)
    first = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    assert isinstance(first, keras_simclr.models.MoCoModel)
    assert isinstance(first.optimizer, keras.optimizers.SGD)
    # 3 steps of 64 keys.
    assert int(first.queue_pointer) == 192
    queue_1 = np.array(first.queue)
    key_1 = [np.array(w) for w in first.key_encoder.weights]

    resumed = pretrain.run_pretraining(dict(config, epochs=2))
    assert resumed["initial_epoch"] == 1 and resumed["optimizer_iterations"] == 6
    second = keras.saving.load_model(os.path.join(output, "checkpoint.keras"))
    # The resumed run appended after the restored keys instead of a new queue.
    assert int(second.queue_pointer) == 384
    queue_2 = np.array(second.queue)
    np.testing.assert_array_equal(queue_2[:192], queue_1[:192])
    np.testing.assert_array_equal(queue_2[384:], queue_1[384:])
    assert not np.allclose(queue_2[192:384], queue_1[192:384])
    # The key encoder went on from its restored moving average.
    moved = [not np.allclose(a, np.array(b)) for a, b in zip(key_1, second.key_encoder.weights)]
    assert any(moved)
    assert len(second.trainable_variables) == len(first.trainable_variables)


@pytest.mark.process
def test_jax_numpy_input_pipeline_end_to_end(cifar_folder, tmp_path):
    # The console script under KERAS_BACKEND=jax, images fed by the NumPy
    # pipeline (Pillow-decoded uint8 arrays, no tf.data) for the batches and
    # the kNN features.
    output = tmp_path / "jax_run"
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_simclr.cli.main",
            "pretrain",
            "--image_folder",
            cifar_folder,
            "--input_pipeline",
            "numpy",
            "--output_dir",
            str(output),
            "--epochs",
            "1",
            "--batch_size",
            "64",
            "--width_multiplier",
            "0.125",
            "--projection_dim",
            "32",
            "--verbose",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # TensorFlow's and absl's Python INFO lines ("INFO:tensorflow:Assets
    # written ...", "I1201 ... builder_impl.py:838] ...") stay off below
    # --verbose 2 (seven of them in this run with --verbose 2).
    python_logs = [
        line
        for line in result.stderr.splitlines()
        if re.match(r"(INFO:|[IW]\d{4} .*\.py:\d+\])", line)
    ]
    assert not python_logs, python_logs
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["input_pipeline"] == "numpy"
    assert metrics["image_size"] == 32 and metrics["train_examples"] == 200
    # 200 images at batch 64: 3 full batches (the remainder is dropped).
    assert metrics["epochs"] == 1 and metrics["optimizer_iterations"] == 3
    assert set(metrics["knn_accuracy_per_epoch"]) == {"1"}
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0
    assert len(metrics["loss_per_epoch"]) == 1
    assert np.isfinite(metrics["loss_per_epoch"][0]) and metrics["loss_per_epoch"][0] > 1.0
    assert metrics["images_per_second"] > 0
    assert os.path.isfile(output / "encoder" / "encoder.keras")


def test_input_pipeline_choice():
    # In this (TensorFlow-backend) session auto is tf; numpy needs a folder.
    assert resolve_input_pipeline(_config(image_folder="/x")) == "tf"
    assert resolve_input_pipeline(_config(image_folder="/x", input_pipeline="numpy")) == "numpy"
    assert resolve_input_pipeline(_config(dataset="cifar10")) == "tf"
    with pytest.raises(ValueError, match="input_pipeline='numpy', dataset='cifar10'"):
        resolve_input_pipeline(_config(dataset="cifar10", input_pipeline="numpy"))


@pytest.mark.slow
def test_numpy_input_pipeline_in_process(cifar_folder, tmp_path):
    # --input_pipeline numpy on the TensorFlow backend too (Keras feeds the
    # PyDataset); the same steps and a kNN result.
    metrics = pretrain.run_pretraining(
        _config(
            image_folder=cifar_folder,
            output_dir=str(tmp_path / "run"),
            epochs=1,
            input_pipeline="numpy",
        )
    )
    assert metrics["input_pipeline"] == "numpy" and metrics["optimizer_iterations"] == 3
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "args, level",
    [([], 1), (["--verbose", "2"], 2), (["--x", "--verbose=0"], 0), (["--verbose", "two"], 1)],
)
def test_verbose_level_is_read_before_tensorflow_loads(args, level):
    assert verbose_level(args) == level
