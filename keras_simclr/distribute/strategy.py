"""One call that picks the right way to spread training over the devices present."""

import numbers

import keras

from keras_simclr.distribute.one_device import OneDevice
from keras_simclr.distribute.worker_role import worker_role


def resolve_strategy(tpu=None, devices=None, collective_timeout=None, *, set_global=False):
    """Returns the strategy (TensorFlow) or distribution (JAX) to train under.

    Whatever it finds, the result has a `scope()`: build, compile and train
    the model inside it, on either backend.

    TensorFlow backend, a `tf.distribute.Strategy`, chosen in this order:
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
    - otherwise the default strategy, `tf.distribute.get_strategy()` (one
      device; its `scope()` changes nothing).

    JAX backend, a `keras.distribution.Distribution` or `OneDevice`:
    - more than one local device (or `devices` given, or the TPU's devices
      with `tpu`): `keras.distribution.DataParallel` over them. Each device
      holds a shard of the batch and a jitted step sees the whole global
      batch, so NT-Xent negatives and BatchNorm statistics are global by
      construction.
    - several processes (`KERAS_DISTRIBUTION_NUM_PROCESSES` > 1, with
      `KERAS_DISTRIBUTION_JOB_ADDRESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`):
      starts JAX's distributed runtime (`keras.distribution.initialize()`,
      once per process, which cannot be undone) and returns a
      `DataParallel(auto_shard_dataset=False)` over every process's devices;
      each process then feeds its own part of every global batch (see
      `process_part`).
    - one device: `OneDevice()`, whose `scope()` runs its block with no
      distribution.

    Side effects: none on the Keras or TensorFlow state unless
    `set_global=True` (the TPU system initialization and JAX's distributed
    runtime aside). A JAX model does not remember the distribution it was
    built under: Keras's JAX `fit`, `evaluate` and `predict` shard their
    batches over the distribution current when they run. So on JAX either
    call them inside `scope()` too (as in the example), or pass
    `set_global=True`, which installs the result as Keras's global
    distribution (`keras.distribution.set_distribution`; `None` for
    `OneDevice`) until you set another. On TensorFlow `set_global` changes
    nothing: a model built in a strategy's scope keeps that strategy and
    runs distributed wherever `fit` is called.

    Args:
        tpu: TPU name or address, `"local"` or `""` (Colab); `None`: no TPU.
        devices: explicit device list (TensorFlow device strings, or JAX
            devices); `None`: every accelerator found.
        collective_timeout: seconds one collective (a gradient all-reduce, a
            variable broadcast) may wait for the other workers before it
            fails with `tf.errors.DeadlineExceededError`
            (`MultiWorkerMirroredStrategy` only); `None` or 0: no limit.
        set_global: JAX: also make the result Keras's global distribution
            (see above). Keyword only.

    Returns:
        TensorFlow: a `tf.distribute.Strategy`. JAX: a
        `keras.distribution.DataParallel`, or `OneDevice()`. All have
        `scope()`; `replicas_of(result)` counts the devices a global batch
        is split over.

    Example:

    ```python
    strategy = keras_simclr.distribute.resolve_strategy()
    batch_size = 256
    keras_simclr.distribute.check_global_batch(batch_size, strategy)
    with strategy.scope():
        model = keras_simclr.models.ContrastiveModel(...)
        model.compile(optimizer=keras_simclr.optimizers.LARS(...))
        model.fit(dataset, epochs=100)
    ```
    """
    backend = keras.backend.backend()
    if backend == "jax":
        result = _jax_distribution(tpu, devices)
        if set_global:
            keras.distribution.set_distribution(None if isinstance(result, OneDevice) else result)
        return result
    if backend != "tensorflow":
        raise ValueError(
            "resolve_strategy supports the tensorflow and jax backends. "
            f"Received: backend={backend!r}"
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


def _jax_distribution(tpu, devices):
    """The JAX half of `resolve_strategy`; sets nothing global."""
    import jax

    if worker_role().num_workers > 1:
        # Several processes: JAX's distributed runtime first (it reads
        # KERAS_DISTRIBUTION_*), then one DataParallel over every
        # process's devices; each process feeds its own part of every
        # global batch (`process_part`), so auto-sharding is off.
        if not jax.distributed.is_initialized():
            keras.distribution.initialize()
        return keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)
    devices = list(devices) if devices is not None else jax.devices()
    if tpu is not None:
        devices = jax.devices("tpu")
    if len(devices) <= 1:
        return OneDevice()
    return keras.distribution.DataParallel(devices=devices)


def replicas_of(strategy):
    """Number of devices that share a global batch under `strategy`.

    Args:
        strategy: what `resolve_strategy` returns (a `tf.distribute.Strategy`,
            a `keras.distribution.Distribution` or `OneDevice`), or `None`
            (one device).

    Returns:
        the replica count: the strategy's `num_replicas_in_sync`, the
        devices of the distribution's mesh (every process's, under JAX
        multi-process), 1 for `OneDevice` and `None`.
    """
    if strategy is None or isinstance(strategy, OneDevice):
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return strategy.num_replicas_in_sync
    if hasattr(strategy, "device_mesh"):
        return len(strategy.device_mesh.devices.reshape(-1))
    raise TypeError(
        "Expected a tf.distribute.Strategy, a keras.distribution.Distribution, OneDevice "
        f"or None. Received: strategy={strategy!r}"
    )


def check_global_batch(batch_size, num_replicas):
    """Raises unless `batch_size` splits evenly over the replicas.

    Args:
        batch_size: the global batch size.
        num_replicas: the replica count, or a strategy or distribution
            (anything `replicas_of` takes).

    Returns:
        the per-replica batch size.
    """
    if not isinstance(num_replicas, numbers.Integral):
        num_replicas = replicas_of(num_replicas)
    if batch_size % num_replicas:
        raise ValueError(
            f"The global batch size must be divisible by the {num_replicas} "
            f"replicas so each holds the same number of images. Received: "
            f"batch_size={batch_size}"
        )
    return batch_size // num_replicas


def same_on_every_worker(strategy, value):
    """Whether every worker (process) holds the same integer `value`.

    A collective (every worker must call it, in the same order). TensorFlow:
    each replica contributes `value` and `value**2`; they are all equal
    exactly when `R * sum(v**2) == sum(v)**2` over the R replicas, and every
    worker computes the same sums, so all reach the same answer. JAX: the
    processes' values are gathered (`process_allgather`). E.g. the epoch a
    resumed run starts from, which each worker reads from the chief's
    checkpoint.

    Args:
        strategy: what `resolve_strategy` returns; `OneDevice` or `None`
            (one process): `True`.
        value: this process's integer.
    """
    if strategy is None or isinstance(strategy, OneDevice):
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


def no_distribution():
    """JAX: runs its block with no Keras distribution set (one device), then restores it.

    For work every process does on its own, e.g. a one-device copy of the
    encoder for kNN features and the export. On TensorFlow it does nothing
    (build outside `strategy.scope()` instead). The same as
    `OneDevice().scope()`.

    Example:

    ```python
    with keras_simclr.distribute.no_distribution():
        local_encoder = keras_simclr.models.create_encoder("resnet18_cifar", 32)
    ```
    """
    return OneDevice().scope()
