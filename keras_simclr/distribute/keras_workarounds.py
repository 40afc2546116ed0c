"""Work-arounds for Keras 3 under `MultiWorkerMirroredStrategy` (TensorFlow backend).

Keras 3.15's TensorFlow trainer reads the first batch before `fit`,
`evaluate` and `predict` (`_maybe_symbolic_build`) and merges its per-replica
parts with `strategy.reduce("MEAN", batch)`. `MultiWorkerMirroredStrategy`'s
reduce takes one tensor, not a nested `(images, labels)` batch, and fails
with "Attempt to convert a value (PerReplica: ...) with an unsupported type"
(keras-team/keras#20585, open; `MirroredStrategy` is not affected). The
merged batch is only used for its shapes and dtypes (to build the model
symbolically), which this replica's own part has too.

Then every step's logs (scalars) are averaged over the replicas with
`strategy.reduce("MEAN", value, axis=0)` only under
`MultiWorkerMirroredStrategy` ("Invalid reduction dimension 0 for input with
0 dimensions"); a scalar needs `axis=None`, which is what `MirroredStrategy`'s
branch computes (the mean over replicas).
"""

import keras


def _is_multi_worker(strategy):
    return getattr(getattr(strategy, "extended", None), "_num_workers", 1) > 1


def _patch_reduce_per_replica():
    """Installs (once) the scalar-safe multi-worker mean in Keras's TF trainer."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "_keras_simclr_patched", False):
        return
    import tensorflow as tf

    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if (
            reduction not in ("auto", "mean")
            or not _is_multi_worker(strategy)
            or isinstance(strategy, tf.distribute.TPUStrategy)
        ):
            return original(values, strategy, reduction)

        def mean(value):
            if isinstance(value, tf.distribute.DistributedValues):
                rank = strategy.experimental_local_results(value)[0].shape.rank
            elif isinstance(value, tf.Tensor):
                rank = value.shape.rank
            else:
                return value
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tf.nest.map_structure(mean, values)

    reduce_per_replica._keras_simclr_patched = True
    trainer.reduce_per_replica = reduce_per_replica


def fix_symbolic_build(model):
    """Lets `model.fit` (and `evaluate`, `predict`) start under `MultiWorkerMirroredStrategy`.

    Replaces, on this model instance, the trainer's pre-build step by one
    that builds from this replica's part of the first batch instead of a
    cross-worker mean of it, and makes Keras's per-step mean of the logs
    accept scalars under `MultiWorkerMirroredStrategy` (patched once in
    `keras.src.backend.tensorflow.trainer`, changing nothing for other
    strategies; see the module docstring). Does nothing on other backends or
    strategies. Returns `model`.

    Example:

    ```python
    with strategy.scope():
        model = ContrastiveModel(...)
        model.compile(...)
    fix_symbolic_build(model).fit(dataset)
    ```
    """
    if keras.backend.backend() != "tensorflow":
        return model
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or not _is_multi_worker(strategy):
        return model
    import tensorflow as tf

    def local_part(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local_part, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    _patch_reduce_per_replica()
    return model
