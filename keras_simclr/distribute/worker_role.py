"""This process's place in a cluster of training processes: `worker_role`."""

import collections
import json
import os

import keras

WorkerRole = collections.namedtuple(
    "WorkerRole", ["task_type", "task_id", "num_workers", "is_chief"]
)
WorkerRole.__doc__ = """This process's place in a multi-worker cluster (`worker_role`).

Fields:
    task_type: `"chief"` or `"worker"` (`"worker"` alone: one process);
        `"process"` for JAX processes (`jax_process_role`).
    task_id: the task's index within its type.
    num_workers: training processes in the cluster (chief and workers); 1
        without a cluster.
    is_chief: whether this process is the one that writes the run's outputs
        (the `chief` task, or worker 0 when the cluster has no chief).
"""


def jax_process_role():
    """This process's role from Keras's `KERAS_DISTRIBUTION_*` variables (JAX processes).

    `KERAS_DISTRIBUTION_NUM_PROCESSES` processes (`keras.distribution.initialize`'s
    variables), this one `KERAS_DISTRIBUTION_PROCESS_ID`, process 0 the chief,
    task type `"process"`; `WorkerRole("worker", 0, 1, True)` when unset.
    `worker_role()` answers this on the JAX backend, whatever the backend here.

    Raises:
        ValueError: the variables are not a process count and an index below it.
    """
    count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not count:
        return WorkerRole("worker", 0, 1, True)
    index = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "").strip()
    try:
        count, index = int(count), int(index)
    except ValueError:
        count = index = -1
    if count < 1 or not 0 <= index < count:
        received_count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
        received_index = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
        raise ValueError(
            "KERAS_DISTRIBUTION_NUM_PROCESSES must be a positive integer and "
            "KERAS_DISTRIBUTION_PROCESS_ID an integer in [0, processes). Received: "
            f"KERAS_DISTRIBUTION_NUM_PROCESSES={received_count!r}, "
            f"KERAS_DISTRIBUTION_PROCESS_ID={received_index!r}"
        )
    return WorkerRole("process", index, count, index == 0)


def worker_role(tf_config=None):
    """This process's role in the cluster `TF_CONFIG` describes (no TensorFlow needed).

    On the JAX backend (and `tf_config=None`) the cluster is Keras's instead:
    `KERAS_DISTRIBUTION_NUM_PROCESSES` processes, this one
    `KERAS_DISTRIBUTION_PROCESS_ID` (`keras.distribution.initialize`'s
    variables), process 0 the chief, task type `"process"`.

    `TF_CONFIG` is TensorFlow's JSON cluster description, e.g. for the
    second of two workers
    `{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 1}}`.
    The chief is the `chief` task when the cluster names one, else worker 0.

    Args:
        tf_config: the JSON text; `None` reads the `TF_CONFIG` environment
            variable.

    Returns:
        a `WorkerRole`; without `TF_CONFIG` (or with a one-process cluster)
        `WorkerRole("worker", 0, 1, True)`.

    Raises:
        ValueError: `TF_CONFIG` is not JSON, or names several workers but no
            valid task for this process.
    """
    if tf_config is None and keras.backend.backend() == "jax":
        return jax_process_role()
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return WorkerRole("worker", 0, 1, True)
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={text!r}"
        ) from None
    cluster = config.get("cluster", {}) if isinstance(config, dict) else {}
    if not isinstance(cluster, dict):
        cluster = {}
    chiefs = list(cluster.get("chief", []) or [])
    workers = list(cluster.get("worker", []) or [])
    num_workers = len(chiefs) + len(workers)
    if num_workers <= 1:
        return WorkerRole("chief" if chiefs else "worker", 0, 1, True)
    task = config.get("task") or {}
    task_type, task_id = task.get("type"), task.get("index", 0)
    jobs = {"chief": chiefs, "worker": workers}
    if (
        task_type not in jobs
        or not isinstance(task_id, int)
        or not (0 <= task_id < len(jobs[task_type]))
    ):
        raise ValueError(
            "TF_CONFIG names a cluster of several workers but this process's task is "
            'not one of them: give "task": {"type": "worker" or "chief", '
            f'"index": i}} within the cluster. Received: task={task!r}'
        )
    is_chief = task_type == "chief" or (not chiefs and task_id == 0)
    return WorkerRole(task_type, task_id, num_workers, is_chief)
