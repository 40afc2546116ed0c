"""One call that picks the right way to spread training over the devices present."""

import json
import os

import keras


def resolve_strategy(tpu=None, devices=None):
    """Returns the strategy (TensorFlow) or distribution (JAX) to train under.

    TensorFlow backend, in this order:
    - `tpu` given (a TPU name or address; `"local"` on a Cloud TPU VM; `""`
      on Colab): connects with `TPUClusterResolver`, initializes the TPU
      system and returns a `tf.distribute.TPUStrategy`.
    - `TF_CONFIG` names more than one worker: `MultiWorkerMirroredStrategy`.
    - `devices` given (e.g. `["/cpu:0", "/cpu:1"]`) or more than one GPU:
      `MirroredStrategy` over them.
    - otherwise the default strategy (one device).

    JAX backend: more than one local device (or `devices` given) sets and
    returns `keras.distribution.DataParallel` over them: each device holds a
    shard of the batch, and a jitted step sees the whole global batch, so
    NT-Xent negatives and BatchNorm statistics are global by construction.
    One device returns `None`.

    Use the result's `scope()` around model creation (both kinds have one):

    Args:
        tpu: TPU name or address, `"local"` or `""` (Colab); `None`: no TPU.
        devices: explicit device list (TensorFlow device strings, or JAX
            devices); `None`: every accelerator found.

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
    if _num_workers_in_tf_config() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices is not None:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _num_workers_in_tf_config():
    config = os.environ.get("TF_CONFIG")
    if not config:
        return 0
    cluster = json.loads(config).get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


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
