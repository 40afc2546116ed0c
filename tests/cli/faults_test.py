"""Fault injection: `keras-simclr pretrain` killed, broken and raced.

A tiny image folder (3 real CIFAR-10 JPEGs per class and split, 3 steps per
epoch at batch 8) and a tiny ResNet. SIGKILL and the second run need real
processes: those tests start the console entry point
(`python -m keras_simclr.cli.main`) with `KERAS_SIMCLR_FAULTS` (see
`keras_simclr/cli/faults.py`). The others inject their fault into
`run_subcommand` (what the console entry calls) in this process, which
spares a TensorFlow start-up per run. All are marked `slow` and run in CI.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import keras
import numpy as np
import pytest

from keras_simclr.cli import pretrain as pretrain_cli
from keras_simclr.cli.errors import run_subcommand
from tests.cli.pretrain_test import _config
from tests.cli.tiny_run import pretrain_command as _command
from tests.cli.tiny_run import tiny_env
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.process]


def pretrain(folder, output, *flags, faults=None, timeout=600):
    """Runs the CLI to its end; returns the CompletedProcess."""
    return subprocess.run(
        _command(folder, output, *flags),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=tiny_env(faults),
        timeout=timeout,
    )


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _error_line(result):
    """The one `error:` line of a failed run (exit status 2)."""
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def _weights(path):
    return [np.array(w) for w in keras.saving.load_model(path).weights]


def _iterations(path):
    return int(keras.saving.load_model(path).optimizer.iterations)


def _in_process(capsys, folder, output, expect_error=False, **overrides):
    """`run_subcommand(run_pretraining)` as the console entry calls it.

    Returns `(stdout, stderr)`, or with `expect_error` the one `error:` line.
    """
    tiny = dict(batch_size=8, projection_dim=16, knn_k=10, knn_every=0)
    config = _config(image_folder=folder, output_dir=str(output), **dict(tiny, **overrides))
    if not expect_error:
        run_subcommand(pretrain_cli.run_pretraining, config)
        return capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_subcommand(pretrain_cli.run_pretraining, config)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_deterministic_run_killed_anywhere_resumes_to_the_uninterrupted_weights(
    tiny_folder, tmp_path
):
    # The uninterrupted reference runs beside the killed ones.
    reference = tmp_path / "reference"
    reference_process = subprocess.Popen(
        _command(tiny_folder, reference, "--epochs", "2", "--deterministic"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=tiny_env(),
    )
    output = tmp_path / "run"
    # 1. SIGKILL inside epoch 2's checkpoint write, after the epoch 1 file
    #    became checkpoint.prev.keras and before the new one is in place.
    killed = pretrain(
        tiny_folder, output, "--epochs", "2", "--deterministic", faults="checkpoint_rotated@2"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not os.path.exists(output / "checkpoint.keras")
    assert _iterations(output / "checkpoint.prev.keras") == 3
    # 2. Resumed from the previous generation; SIGKILL again inside the
    #    write, the new file complete under its temporary name.
    killed = pretrain(
        tiny_folder, output, "--epochs", "2", "--deterministic", faults="checkpoint_written@2"
    )
    assert killed.returncode == -signal.SIGKILL
    assert "Resuming from" in killed.stdout
    assert os.path.exists(output / "checkpoint.tmp.keras")
    # 3. SIGKILL in the middle of epoch 2 (after its step 2 of 3).
    killed = pretrain(tiny_folder, output, "--epochs", "2", "--deterministic", faults="kill@2:2")
    assert killed.returncode == -signal.SIGKILL
    # 4. Started once more: it finishes.
    resumed = _ok(pretrain(tiny_folder, output, "--epochs", "2", "--deterministic"))
    assert "Resuming from" in resumed.stdout
    stdout, stderr = reference_process.communicate(timeout=600)
    assert reference_process.returncode == 0, stderr[-3000:]

    expected = _weights(reference / "checkpoint.keras")
    got = _weights(output / "checkpoint.keras")
    assert len(got) == len(expected)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(got, expected))
    assert worst <= 1e-5, worst
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["optimizer_iterations"] == 6 and metrics["epochs"] == 2
    assert len(metrics["loss_per_epoch"]) == 2
    assert not os.path.exists(output / "checkpoint.tmp.keras")


def test_second_run_into_a_folder_is_refused_and_a_killed_holder_is_taken_over(
    capsys, tiny_folder, tmp_path
):
    output = tmp_path / "run"
    first = subprocess.Popen(
        _command(tiny_folder, output, "--epochs", "50"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=tiny_env(),
    )
    try:
        lock = output / ".lock"
        deadline = time.time() + 300
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.2)
        # A second process: refused before any work.
        line = _error_line(pretrain(tiny_folder, output, "--epochs", "50"))
        assert f"pid {first.pid}" in line and str(output) in line
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.communicate()
    # The lock the killed run left is stale: the next run takes it over.
    stdout = _in_process(capsys, tiny_folder, output, epochs=1, resume=False).out
    assert f"pid {first.pid}" in stdout and "Took over" in stdout


def test_truncated_checkpoint_is_named_with_the_ways_out(capsys, tiny_folder, tmp_path):
    output = tmp_path / "run"
    _in_process(capsys, tiny_folder, output, epochs=2)
    path = output / "checkpoint.keras"
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    line = _in_process(capsys, tiny_folder, output, expect_error=True, epochs=3)
    assert str(path) in line and "--noresume" in line
    # Two epochs ran: the previous generation is offered.
    assert "checkpoint.prev.keras" in line


def test_infinite_batchnorm_state_is_never_checkpointed(capsys, monkeypatch, tiny_folder, tmp_path):
    # The loss stays finite (training BatchNorm uses batch statistics); the
    # moving variance does not.
    monkeypatch.setenv("KERAS_SIMCLR_FAULTS", "inf_batchnorm@2")
    output = tmp_path / "run"
    line = _in_process(capsys, tiny_folder, output, expect_error=True, epochs=2)
    assert "non-finite values after epoch 2" in line and "moving_variance" in line
    assert str(output / "checkpoint.keras") in line
    model = keras.saving.load_model(output / "checkpoint.keras")
    assert int(model.optimizer.iterations) == 3  # epoch 1
    assert all(
        np.isfinite(np.array(v)).all()
        for v in model.variables
        if np.issubdtype(np.array(v).dtype, np.floating)
    )
    assert not os.path.exists(output / "metrics.json")


def test_extending_epochs_replans_the_schedule_and_a_changed_rate_is_refused(
    capsys, tiny_folder, tmp_path
):
    output = tmp_path / "run"
    _in_process(capsys, tiny_folder, output, epochs=1)
    after_one = _weights(output / "checkpoint.keras")
    _in_process(capsys, tiny_folder, output, epochs=3)
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    rates = metrics["learning_rate_per_epoch"]
    # The 1-epoch schedule had ended at 0; the 3-epoch one is re-planned.
    assert rates[0] == 0.0 and rates[1] > 0 and len(rates) == 3
    assert metrics["optimizer_iterations"] == 9
    moved = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(_weights(output / "checkpoint.keras"), after_one)
    )
    assert moved > 1e-3
    with open(output / "config.json") as f:
        assert json.load(f)["resolved"]["total_steps"] == 9

    before = {name: os.path.getmtime(output / name) for name in os.listdir(output)}
    line = _in_process(
        capsys, tiny_folder, output, expect_error=True, epochs=3, learning_rate=0.5, batch_size=16
    )
    assert "--learning_rate unset -> 0.5" in line and "--batch_size 8 -> 16" in line
    assert "--noresume" in line
    # A finished run started again reports its result and changes nothing.
    assert "already finished 3 epochs" in _in_process(capsys, tiny_folder, output, epochs=3).out
    assert {name: os.path.getmtime(output / name) for name in os.listdir(output)} == before


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_corrupt_image_is_named_before_the_first_step(capsys, tiny_folder, tmp_path, split):
    root = tmp_path / "data"
    shutil.copytree(tiny_folder, root)
    bad = root / split / "cat" / "zz_corrupt.jpg"
    bad.write_bytes(os.urandom(2000))
    output = tmp_path / "run"
    line = _in_process(capsys, str(root), output, expect_error=True, epochs=1)
    assert str(bad) in line and "--skip_bad_images" in line
    assert not os.path.exists(output / "checkpoint.keras")
    assert not os.path.exists(output / "config.json")
    with pytest.warns(UserWarning, match="zz_corrupt.jpg"):
        _in_process(capsys, str(root), output, epochs=1, skip_bad_images=True)
    with open(output / "config.json") as f:
        assert json.load(f)["resolved"]["train_examples"] == 30  # the 31st was bad
