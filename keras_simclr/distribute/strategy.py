"""One call that picks the right way to spread training over the devices present."""

import collections
import contextlib
import json
import os

import keras

WorkerRole = collections.namedtuple(
    "WorkerRole", ["task_type", "task_id", "num_workers", "is_chief"]
)
WorkerRole.__doc__ = """This process's place in a multi-worker cluster (`worker_role`).

Fields:
    task_type: `"chief"` or `"worker"` (`"worker"` alone: one process).
    task_id: the task's index within its type.
    num_workers: training processes in the cluster (chief and workers); 1
        without a cluster.
    is_chief: whether this process is the one that writes the run's outputs
        (the `chief` task, or worker 0 when the cluster has no chief).
"""


def resolve_strategy(tpu=None, devices=None, collective_timeout=None):
    """Returns the strategy (TensorFlow) or distribution (JAX) to train under.

    TensorFlow backend, in this order:
    - `tpu` given (a TPU name or address; `"local"` on a Cloud TPU VM; `""`
      on Colab): connects with `TPUClusterResolver`, initializes the TPU
      system and returns a `tf.distribute.TPUStrategy`.
    - `TF_CONFIG` names more than one worker: `MultiWorkerMirroredStrategy`
      (one process per machine, all started with the same flags). It must
      be created before TensorFlow runs any op in the process ("Collective
      ops must be configured at program startup"), and it waits until every
      worker has joined. A worker that dies makes the others' next collective
      fail (`tf.errors.UnavailableError`, within seconds on a closed socket);
      `collective_timeout` bounds the wait for a worker that hangs instead.
    - `devices` given (e.g. `["/cpu:0", "/cpu:1"]`) or more than one GPU:
      `MirroredStrategy` over them.
    - otherwise the default strategy (one device).

    JAX backend: more than one local device (or `devices` given) sets and
    returns `keras.distribution.DataParallel` over them: each device holds a
    shard of the batch, and a jitted step sees the whole global batch, so
    NT-Xent negatives and BatchNorm statistics are global by construction.
    One device returns `None`. Several processes
    (`KERAS_DISTRIBUTION_NUM_PROCESSES` > 1, with
    `KERAS_DISTRIBUTION_JOB_ADDRESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`):
    `keras.distribution.initialize()` (JAX's distributed runtime) and
    `DataParallel` over every process's devices, each process feeding its
    own part of each global batch (see `process_part`).

    Use the result's `scope()` around model creation (both kinds have one):

    Args:
        tpu: TPU name or address, `"local"` or `""` (Colab); `None`: no TPU.
        devices: explicit device list (TensorFlow device strings, or JAX
            devices); `None`: every accelerator found.
        collective_timeout: seconds one collective (a gradient all-reduce, a
            variable broadcast) may wait for the other workers before it
            fails with `tf.errors.DeadlineExceededError`
            (`MultiWorkerMirroredStrategy` only); `None` or 0: no limit.

    Returns:
        a `tf.distribute.Strategy`, a `keras.distribution.DataParallel`, or
        `None` (JAX with one device).

    Example:

    ```python
    strategy = keras_simclr.distribute.resolve_strategy()
    with strategy.scope():
        model = keras_simclr.models.ContrastiveModel(...)
        model.compile(optimizer=keras_simclr.optimizers.LARS(...))
    model.fit(dataset)
    ```
    """
    if keras.backend.backend() == "jax":
        import jax

        if worker_role().num_workers > 1:
            # Several processes: JAX's distributed runtime first (it reads
            # KERAS_DISTRIBUTION_*), then one DataParallel over every
            # process's devices; each process feeds its own part of every
            # global batch (`process_part`), so auto-sharding is off.
            if not jax.distributed.is_initialized():
                keras.distribution.initialize()
            distribution = keras.distribution.DataParallel(
                devices=jax.devices(), auto_shard_dataset=False
            )
            keras.distribution.set_distribution(distribution)
            return distribution
        devices = list(devices) if devices is not None else jax.devices()
        if tpu is not None:
            devices = jax.devices("tpu")
        if len(devices) <= 1:
            return None
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
        return distribution
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "resolve_strategy supports the tensorflow and jax backends. "
            f"Received: backend={keras.backend.backend()!r}"
        )
    import tensorflow as tf

    if tpu is not None:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu not in ("local",):
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if worker_role().num_workers > 1:
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=float(collective_timeout) if collective_timeout else None
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if devices is not None:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _jax_process_role():
    """The role from Keras's `KERAS_DISTRIBUTION_*` variables (JAX processes)."""
    count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not count:
        return WorkerRole("worker", 0, 1, True)
    index = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "").strip()
    try:
        count, index = int(count), int(index)
    except ValueError:
        count = index = -1
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            "KERAS_DISTRIBUTION_NUM_PROCESSES must be a positive integer and "
            "KERAS_DISTRIBUTION_PROCESS_ID an integer in [0, processes). Received: "
            f"KERAS_DISTRIBUTION_NUM_PROCESSES={os.environ.get('KERAS_DISTRIBUTION_NUM_PROCESSES')!r}, "
            f"KERAS_DISTRIBUTION_PROCESS_ID={os.environ.get('KERAS_DISTRIBUTION_PROCESS_ID')!r}"
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
        return _jax_process_role()
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
    if task_type not in jobs or not isinstance(task_id, int) or not (
        0 <= task_id < len(jobs[task_type])
    ):
        raise ValueError(
            "TF_CONFIG names a cluster of several workers but this process's task is "
            "not one of them: give \"task\": {\"type\": \"worker\" or \"chief\", "
            f"\"index\": i}} within the cluster. Received: task={task!r}"
        )
    is_chief = task_type == "chief" or (not chiefs and task_id == 0)
    return WorkerRole(task_type, task_id, num_workers, is_chief)


def replicas_of(strategy):
    """Number of devices that share a global batch under `strategy`."""
    if strategy is None:
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return strategy.num_replicas_in_sync
    return len(strategy.device_mesh.devices.reshape(-1))


def check_global_batch(batch_size, num_replicas):
    """Raises unless `batch_size` splits evenly over `num_replicas`.

    Returns the per-replica batch size.
    """
    if batch_size % num_replicas:
        raise ValueError(
            f"The global batch size must be divisible by the {num_replicas} "
            f"replicas so each holds the same number of images. Received: "
            f"batch_size={batch_size}"
        )
    return batch_size // num_replicas


def same_on_every_worker(strategy, value):
    """Whether every replica of `strategy` holds the same integer `value`.

    A collective (every worker must call it, in the same order): each
    replica contributes `value` and `value**2`; they are all equal exactly
    when `R * sum(v**2) == sum(v)**2` over the R replicas, and every worker
    computes the same sums, so all reach the same answer. E.g. the epoch a
    resumed run starts from, which each worker reads from the chief's
    checkpoint.

    Args:
        strategy: a `tf.distribute.Strategy`, or `None` (one process: `True`).
        value: this process's integer.
    """
    if strategy is None:
        return True
    if keras.backend.backend() == "jax":
        import jax
        import numpy as np
        from jax.experimental import multihost_utils

        if jax.process_count() == 1:
            return True
        values = multihost_utils.process_allgather(np.array([value], "int64"))
        return bool(np.all(np.asarray(values) == value))
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    pair = tf.constant([value, value * value], tf.float64)
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(pair)), axis=None
    ).numpy()
    replicas = strategy.num_replicas_in_sync
    return bool(replicas * total[1] == total[0] * total[0])


def process_part(batches, index, count):
    """This process's part of every global batch: rows `[index*b, (index+1)*b)`, `b = B / count`.

    For JAX multi-process data parallelism, where each process feeds its own
    slice of the global batch (`DataParallel(auto_shard_dataset=False)`).
    Every process must see the same global batches (the same data, seed
    and order), as `ShuffledBatches` and a seeded tf.data pipeline give.

    Args:
        batches: a `keras.utils.PyDataset` yielding `(images, labels)` or
            `(images,)` global batches (its `epoch` attribute, if any, stays
            reachable and settable through the result), or a batched
            `tf.data.Dataset`.
        index: this process's index.
        count: the number of processes; must divide the batch size.

    Returns:
        the same kind of object, yielding `B / count` rows per batch.
    """
    if count == 1:
        return batches
    if hasattr(batches, "element_spec"):  # tf.data
        import tensorflow as tf

        def part(*tensors):
            rows = tf.shape(tensors[0])[0] // count
            return tuple(t[index * rows:(index + 1) * rows] for t in tensors)

        return batches.map(part)
    return _ProcessBatches(batches, index, count)


class _ProcessBatches(keras.utils.PyDataset):
    def __init__(self, batches, index, count):
        super().__init__()
        self._batches = batches
        self._index = index
        self._count = count

    @property
    def epoch(self):
        return self._batches.epoch

    @epoch.setter
    def epoch(self, value):
        self._batches.epoch = value

    @property
    def num_batches(self):
        return self._batches.num_batches

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, i):
        batch = self._batches[i]
        if not isinstance(batch, tuple):
            batch = (batch,)
        rows = len(batch[0]) // self._count
        part = tuple(t[self._index * rows:(self._index + 1) * rows] for t in batch)
        return part if len(part) > 1 else part[0]

    def on_epoch_begin(self):
        self._batches.on_epoch_begin()

    def on_epoch_end(self):
        self._batches.on_epoch_end()


@contextlib.contextmanager
def no_distribution():
    """JAX: runs its block with no Keras distribution set (one device), then restores it.

    For work every process does on its own, e.g. a one-device copy of the
    encoder for kNN features and the export. On TensorFlow it does nothing
    (build outside `strategy.scope()` instead).
    """
    if keras.backend.backend() != "jax":
        yield
        return
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)
