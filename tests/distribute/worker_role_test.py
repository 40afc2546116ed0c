import json

import pytest

from keras_simclr.distribute import WorkerRole
from keras_simclr.distribute import worker_role


def _tf_config(cluster, task_type=None, index=0):
    config = {"cluster": cluster}
    if task_type is not None:
        config["task"] = {"type": task_type, "index": index}
    return json.dumps(config)


TWO = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def test_no_cluster_is_one_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_role() == WorkerRole("worker", 0, 1, True)
    assert worker_role(_tf_config({"worker": ["h:1"]}, "worker", 0)).num_workers == 1


def test_worker_zero_is_chief_without_a_chief_task():
    assert worker_role(_tf_config(TWO, "worker", 0)) == WorkerRole("worker", 0, 2, True)
    assert worker_role(_tf_config(TWO, "worker", 1)) == WorkerRole("worker", 1, 2, False)


def test_a_chief_task_is_the_chief(monkeypatch):
    cluster = dict(TWO, chief=["127.0.0.1:3"])
    assert worker_role(_tf_config(cluster, "chief", 0)) == WorkerRole("chief", 0, 3, True)
    monkeypatch.setenv("TF_CONFIG", _tf_config(cluster, "worker", 0))
    assert worker_role() == WorkerRole("worker", 0, 3, False)


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        (_tf_config(TWO), "task is not one of them"),
        (_tf_config(TWO, "worker", 2), "Received: task="),
        (_tf_config(TWO, "evaluator", 0), "task is not one of them"),
    ],
)
def test_bad_tf_config_is_named(text, match):
    with pytest.raises(ValueError, match=match):
        worker_role(text)


def test_jax_processes_come_from_keras_distribution_variables(monkeypatch):
    from keras_simclr.distribute.worker_role import jax_process_role

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    assert jax_process_role() == WorkerRole("process", 1, 2, False)
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "2")
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_PROCESS_ID=2|'2'"):
        jax_process_role()
    monkeypatch.delenv("KERAS_DISTRIBUTION_NUM_PROCESSES")
    assert jax_process_role() == WorkerRole("worker", 0, 1, True)
