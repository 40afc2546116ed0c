"""The command line's error contract: one `error:` line naming the path or value, exit 2.

These run the subcommands' entry function (`run_subcommand`, what
`keras-simclr pretrain` calls) in this process; `faults_test.py` runs the
console script in real processes.
"""

import contextlib
import os
import subprocess

import pytest

from keras_simclr.cli import evaluate
from keras_simclr.cli import pretrain
from keras_simclr.cli.errors import run_subcommand
from tests.cli.pretrain_test import _config


def _fails_with_one_line(capsys, function, config):
    with pytest.raises(SystemExit) as exit_info:
        run_subcommand(function, config, verbose=1)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@contextlib.contextmanager
def _tmpfs(path, options):
    """A tmpfs mounted at `path` (needs root, as on CI and the dev machines)."""
    os.makedirs(path, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.parametrize(
    "overrides, received",
    [
        ({"learning_rate": -1.0}, "learning_rate=-1.0"),
        ({"learning_rate": float("nan")}, "learning_rate=nan"),
        ({"width_multiplier": 0.0}, "width_multiplier=0.0"),
        ({"train_examples": 0}, "train_examples=0"),
        ({"temperature": -0.5}, "temperature=-0.5"),
        ({"epochs": 0}, "epochs=0"),
    ],
)
def test_bad_values_are_one_line_errors(capsys, cifar_folder, tmp_path, overrides, received):
    config = _config(image_folder=cifar_folder, output_dir=str(tmp_path / "run"), **overrides)
    line = _fails_with_one_line(capsys, pretrain.run_pretraining, config)
    assert received in line
    assert not os.path.exists(tmp_path / "run" / "config.json")


def test_finetune_label_fraction_outside_0_1_is_refused(capsys, cifar_folder):
    config = {
        "encoder": None,
        "model": "resnet18_cifar",
        "dataset": None,
        "tfds_data_dir": None,
        "image_folder": cifar_folder,
        "train_split": "train",
        "eval_split": "test",
        "label_fraction": 2.0,
        "epochs": 1,
        "batch_size": 8,
        "learning_rate": None,
        "optimizer": "sgd",
        "augment": False,
        "seed": 0,
        "output": None,
    }
    line = _fails_with_one_line(capsys, lambda c: evaluate.run_evaluation(c, "finetune"), config)
    assert "label_fraction=2.0" in line


def test_output_dir_that_is_a_file(capsys, cifar_folder, tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    line = _fails_with_one_line(
        capsys, pretrain.run_pretraining, _config(image_folder=cifar_folder, output_dir=str(path))
    )
    assert str(path) in line and "is a file" in line


def test_read_only_output_dir(capsys, cifar_folder, tmp_path):
    with _tmpfs(tmp_path / "ro", "size=1m,ro") as mount:
        output = mount / "run"
        line = _fails_with_one_line(
            capsys,
            pretrain.run_pretraining,
            _config(image_folder=cifar_folder, output_dir=str(output), epochs=1),
        )
    assert str(output) in line and "Read-only file system" in line


@pytest.mark.slow
def test_full_disk_names_the_checkpoint_and_leaves_no_partial_file(capsys, cifar_folder, tmp_path):
    # Room for the logs, not for a checkpoint (about 1.5 MB at this width).
    with _tmpfs(tmp_path / "small", "size=256k") as mount:
        output = mount / "run"
        line = _fails_with_one_line(
            capsys,
            pretrain.run_pretraining,
            _config(image_folder=cifar_folder, output_dir=str(output), epochs=1, knn_every=0),
        )
        assert "checkpoint" in line and str(output) in line
        assert "No space left on device" in line
        assert not [name for name in os.listdir(output) if name.endswith(".keras")]


@pytest.mark.slow
def test_unreadable_config_json_is_named(capsys, cifar_folder, tmp_path):
    output = tmp_path / "run"
    config = _config(image_folder=cifar_folder, output_dir=str(output), epochs=1, knn_every=0)
    pretrain.run_pretraining(config)
    (output / "config.json").write_text("")
    line = _fails_with_one_line(capsys, pretrain.run_pretraining, dict(config, epochs=2))
    assert str(output / "config.json") in line and "--noresume" in line


def test_verbose_2_prints_the_traceback(capsys, tmp_path):
    config = _config(image_folder="/nonexistent/folder", output_dir=str(tmp_path / "run"))
    with pytest.raises(SystemExit):
        run_subcommand(pretrain.run_pretraining, config, verbose=2)
    err = capsys.readouterr().err
    assert "Traceback" in err and "error:" in err and "/nonexistent/folder" in err


def _tf_config(index):
    import json

    return json.dumps(
        {
            "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
            "task": {"type": "worker", "index": index},
        }
    )


def test_bad_or_late_tf_config_is_one_line(capsys, monkeypatch, cifar_folder, tmp_path):
    config = _config(image_folder=cifar_folder, output_dir=str(tmp_path / "run"))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert "TF_CONFIG is not valid JSON" in _fails_with_one_line(
        capsys, pretrain.run_pretraining, config
    )
    # TensorFlow has run ops in this process: a multi-worker strategy can no
    # longer be created, and the error says so instead of a traceback.
    import tensorflow as tf

    tf.constant(1.0) + 1
    monkeypatch.setenv("TF_CONFIG", _tf_config(0))
    line = _fails_with_one_line(capsys, pretrain.run_pretraining, config)
    assert "TF_CONFIG names 2 workers" in line and "fresh process" in line
