"""`keras-simclr pretrain` in two real worker processes (MultiWorkerMirroredStrategy).

Two processes on 127.0.0.1, each with its own `TF_CONFIG` naming both, run
the console entry point (`python -m keras_simclr.cli.main pretrain`) on the
tiny image folder of `faults_test.py` (30 train images, batch 8: 3 steps,
1 epoch, `--deterministic`). Worker 0 is the chief. The non-chief keeps its
copies in `KERAS_SIMCLR_WORKER_DIR` (a test hook: unset, they go to a
temporary folder it deletes), so its own final weights can be compared with
the chief's. Marked `slow`; both tests together add about a minute of CI.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_simclr.models  # noqa: F401  registers the classes the checkpoints hold
from tests.cli.tiny_run import TINY
from tests.cli.tiny_run import pretrain_command
from tests.cli.tiny_run import tiny_env
from tests.conftest import REPO_ROOT
from tests.conftest import run_in_subprocess

pytestmark = [pytest.mark.slow, pytest.mark.process]

FLAGS = [*TINY, "--epochs", "1", "--deterministic"]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(folder, output, worker_dir, faults=None):
    """Starts worker 0 (the chief) and worker 1; returns the two Popen objects.

    `faults`: `KERAS_SIMCLR_FAULTS` of worker 1.
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        env = tiny_env(faults if index == 1 else None)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        env["KERAS_SIMCLR_WORKER_DIR"] = str(worker_dir)
        processes.append(
            subprocess.Popen(
                pretrain_command(folder, output, "--epochs", "1", "--deterministic"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
                env=env,
            )
        )
    return processes


def _finish(process, timeout=300):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"worker did not finish in {timeout} s: {stderr[-3000:]}") from None
    return process.returncode, stdout, stderr


def _weights(path):
    return [np.array(w) for w in keras.saving.load_model(path).weights]


def _worst(a, b):
    assert len(a) == len(b)
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


# One process, MirroredStrategy over two logical CPU devices, the same flags.
_MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_simclr.cli import pretrain
from tests.cli.pretrain_test import _config
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
config = _config(image_folder={folder!r}, output_dir={output!r}, batch_size=8, epochs=1,
                 projection_dim=16, knn_k=10, knn_every=0, deterministic=True)
metrics = pretrain.run_pretraining(config, strategy=strategy)
print(json.dumps({{"replicas": metrics["replicas"]}}))
"""


def test_two_workers_train_like_one_process_on_two_devices_and_only_the_chief_writes(
    tiny_folder,
    tmp_path,  # noqa: F811
):
    output, worker_dir = tmp_path / "run", tmp_path / "worker1"
    workers = _start_workers(tiny_folder, output, worker_dir)
    reference = tmp_path / "mirrored"
    stdout = run_in_subprocess(
        _MIRRORED.format(folder=tiny_folder, output=str(reference)),
        backend="tensorflow",
        extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert json.loads(stdout.strip().splitlines()[-1]) == {"replicas": 2}
    for process in workers:
        code, out, err = _finish(process)
        assert code == 0, out[-2000:] + err[-3000:]
        assert "kNN accuracy" in out

    # The chief's folder holds every output; the other worker wrote none there.
    names = set(os.listdir(output))
    assert {
        "checkpoint.keras",
        "config.json",
        "log.csv",
        "metrics.json",
        "encoder",
        "tensorboard",
        ".lock",
    } <= names
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["replicas"] == 2 and metrics["workers"] == 2
    assert metrics["optimizer_iterations"] == 3
    assert np.isfinite(metrics["loss_per_epoch"][0])
    # The non-chief saved its checkpoint (saving is collective) but no export.
    assert "checkpoint.keras" in os.listdir(worker_dir)
    assert "encoder" not in os.listdir(worker_dir)

    chief = _weights(output / "checkpoint.keras")
    other = _weights(worker_dir / "checkpoint.keras")
    mirrored = _weights(reference / "checkpoint.keras")
    assert _worst(chief, other) == 0.0
    assert _worst(chief, mirrored) <= 1e-5
    # The step moved the weights (equal weights are not trivially equal).
    loaded = keras.saving.load_model(reference / "checkpoint.keras")
    assert int(loaded.optimizer.iterations) == 3
    # The exported encoder is the trained one.
    exported = keras.saving.load_model(output / "encoder" / "encoder.keras")
    assert (
        _worst(
            [np.array(w) for w in exported.weights], [np.array(w) for w in loaded.encoder.weights]
        )
        <= 1e-5
    )


def test_a_killed_worker_stops_the_other_with_an_error_line(tiny_folder, tmp_path):  # noqa: F811
    output, worker_dir = tmp_path / "run", tmp_path / "worker1"
    chief, killed = _start_workers(tiny_folder, output, worker_dir, faults="kill@1:2")
    code, _, err = _finish(killed)
    assert code == -signal.SIGKILL, err[-3000:]
    died = time.time()
    code, out, err = _finish(chief, timeout=180)
    waited = time.time() - died
    assert code == 2, out[-2000:] + err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    assert "lost contact" in lines[0] and str(output) in lines[0]
    assert "Traceback" not in err
    assert waited < 120, waited
    assert not os.path.exists(output / "checkpoint.keras")


def test_two_jax_processes_train_like_one_process_on_two_devices(
    tiny_folder,
    tmp_path,  # noqa: F811
):
    # keras.distribution.initialize over 127.0.0.1 (JAX's CPU collectives),
    # DataParallel over both processes' devices; each process feeds its half
    # of every global batch. Reference: one JAX process, 2 host devices.
    output, worker_dir = tmp_path / "run", tmp_path / "process1"
    port = _free_ports(1)[0]
    command = [
        sys.executable,
        "-m",
        "keras_simclr.cli.main",
        "pretrain",
        "--image_folder",
        tiny_folder,
        *FLAGS,
    ]
    processes = []
    for index in range(2):
        env = tiny_env()
        env.update(
            KERAS_BACKEND="jax",
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port},127.0.0.1:{port + 1}",
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            KERAS_SIMCLR_WORKER_DIR=str(worker_dir),
        )
        processes.append(
            subprocess.Popen(
                [*command, "--output_dir", str(output)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
                env=env,
            )
        )
    reference = tmp_path / "two_devices"
    env = tiny_env()
    env.update(KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    single = subprocess.run(
        [*command, "--output_dir", str(reference)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    for process in processes:
        code, out, err = _finish(process)
        assert code == 0, out[-2000:] + err[-3000:]
    with open(output / "metrics.json") as f:
        assert json.load(f)["optimizer_iterations"] == 3
    with open(reference / "metrics.json") as f:
        assert json.load(f)["replicas"] == 2
    assert "encoder" not in os.listdir(worker_dir)
    chief = _weights(output / "checkpoint.keras")
    assert _worst(chief, _weights(worker_dir / "checkpoint.keras")) == 0.0
    assert _worst(chief, _weights(reference / "checkpoint.keras")) <= 1e-5
