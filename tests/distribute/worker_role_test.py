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
    from keras_simclr.distribute import strategy

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    assert strategy._jax_process_role() == WorkerRole("process", 1, 2, False)
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "2")
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_PROCESS_ID=2|'2'"):
        strategy._jax_process_role()
    monkeypatch.delenv("KERAS_DISTRIBUTION_NUM_PROCESSES")
    assert strategy._jax_process_role() == WorkerRole("worker", 0, 1, True)


def test_process_part_slices_every_global_batch_and_forwards_the_epoch():
    import numpy as np

    from keras_simclr.data import ShuffledBatches
    from keras_simclr.distribute import process_part

    images = np.arange(12 * 2 * 2 * 3, dtype="uint8").reshape(12, 2, 2, 3)
    labels = np.arange(12)
    batches = ShuffledBatches(images, labels, batch_size=4, seed=0)
    parts = [process_part(batches, index, 2) for index in range(2)]
    parts[1].epoch = 3
    assert batches.epoch == 3 and parts[0].epoch == 3 and len(parts[0]) == 3
    for step in range(3):
        whole = batches[step]
        halves = [part[step] for part in parts]
        np.testing.assert_array_equal(np.concatenate([h[1] for h in halves]), whole[1])
        np.testing.assert_array_equal(np.concatenate([h[0] for h in halves]), whole[0])
    parts[0].on_epoch_end()
    assert batches.epoch == 4
    assert process_part(batches, 0, 1) is batches
