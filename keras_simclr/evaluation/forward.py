"""An inference forward pass that gives one row per image under any distribution.

Why it exists: on the TensorFlow backend, Keras's `Model.predict_on_batch`
hands its whole batch to `distribute_strategy.run` without splitting it, so
under a `tf.distribute` strategy with R replicas every replica computes the
whole batch and the outputs are concatenated: R times the rows (observed with
`MirroredStrategy`, Keras 3.15 / TF 2.21). It happens whenever the model was
built in a strategy's scope (the model keeps that strategy) or the call is
made inside one. `Model.predict` splits its batches over the replicas through
its data adapter and is right.

`predict_batch` calls the model's own `predict_step` in a `tf.function`
outside the strategy's replica context instead: one device computes the
whole batch from the (mirrored) variables, exactly as on a single-device
model. Everywhere else (no strategy, JAX, torch, NumPy) it is
`predict_on_batch`, untouched; on JAX under `keras.distribution.DataParallel`
`predict_on_batch` does not shard its input, so any batch size works there.
"""

import contextlib
import weakref

import keras
import numpy as np

from keras_simclr.distribute.strategy import no_distribution

# model -> its cross-replica forward, traced once per model (as Keras caches
# `predict_function`). Weak keys: the entry goes with the model.
_CROSS_REPLICA_FORWARDS = weakref.WeakKeyDictionary()


def _under_tf_strategy(model):
    """True when `predict_on_batch` would run under a non-default tf.distribute strategy."""
    import tensorflow as tf  # the backend is TensorFlow: already imported

    if tf.distribute.has_strategy():
        return True
    strategy = getattr(model, "distribute_strategy", None)
    return strategy is not None and strategy is not tf.distribute.get_strategy()


def _cross_replica_forward(model):
    forward = _CROSS_REPLICA_FORWARDS.get(model)
    if forward is None:
        import tensorflow as tf

        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        def forward(images):
            return model_ref().predict_step((images,))

        # As Keras does under tf.distribute: no XLA.
        forward = tf.function(forward, reduce_retracing=True)
        _CROSS_REPLICA_FORWARDS[model] = forward
    return forward


def predict_batch(model, images):
    """The model's inference outputs for one batch, one row per image, as NumPy.

    `model.predict_on_batch(images)`, except on the TensorFlow backend under
    a `tf.distribute` strategy (the model's or the current scope's), where
    the model's `predict_step` runs on one device outside the replica
    context (see the module docstring).

    Args:
        model: a `keras.Model` whose `predict_step` returns one tensor.
        images: a NumPy batch.

    Returns:
        a NumPy array with `len(images)` rows.
    """
    if keras.backend.backend() == "tensorflow" and _under_tf_strategy(model):
        if model.run_eagerly:
            outputs = model.predict_step((images,))
        else:
            outputs = _cross_replica_forward(model)(images)
        return keras.ops.convert_to_numpy(outputs)
    return np.asarray(model.predict_on_batch(images))


def predict_in_batches(model, inputs, batch_size):
    """`predict_batch` over `inputs` in chunks of `batch_size`, concatenated."""
    return np.concatenate(
        [
            predict_batch(model, inputs[start : start + batch_size])
            for start in range(0, len(inputs), batch_size)
        ]
    )


def _batch_shards():
    """How many pieces the current JAX distribution cuts each batch into (1: none)."""
    if keras.backend.backend() != "jax":
        return 1
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    name = getattr(distribution, "batch_dim_name", None)
    if name in mesh.axis_names:
        return int(mesh.shape[mesh.axis_names.index(name)])
    return int(np.prod(mesh.shape))


def batches_split_evenly(batch_size, num_examples=None, dataset=None):
    """Whether Keras's `fit` can shard every training batch over the JAX distribution.

    Under `keras.distribution.DataParallel` over D devices, Keras's JAX
    `fit` refuses a batch whose size is not a multiple of D (the last,
    partial batch of an epoch, typically). True without a JAX distribution.

    Args:
        batch_size: the batch size of arrays.
        num_examples: the number of training examples (arrays).
        dataset: a batched `tf.data.Dataset` instead: it splits evenly when
            its batch size is static (`drop_remainder=True`) and a multiple
            of D.
    """
    shards = _batch_shards()
    if shards == 1:
        return True
    if dataset is not None:
        spec = dataset.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        size = spec.shape[0] if spec.shape.rank else None
        return size is not None and size % shards == 0
    return batch_size % shards == 0 and num_examples % batch_size % shards == 0


@contextlib.contextmanager
def distribution_for_fit(batches_even):
    """Keeps the JAX distribution when every batch splits evenly, else lifts it.

    Without the distribution, the models made and fit inside run as on one
    device (the encoder's replicated variables are read as they are), which
    gives the single-device result where the distributed `fit` would refuse
    the data. Nothing changes on other backends or without a distribution.
    """
    if batches_even or _batch_shards() == 1:
        yield
        return
    with no_distribution():
        yield
