"""Cross-replica helpers: the global batch as every replica sees it."""

import keras


def _replica_context():
    """The `tf.distribute` replica context when running inside a strategy's
    replica function with more than one replica, else `None`."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def num_replicas_in_sync():
    """Number of replicas that share the global batch (1 outside a strategy)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def cross_replica_concat(tensor):
    """Concatenates `tensor` from every replica along axis 0, in replica order.

    Under a `tf.distribute` strategy with R replicas each holding `n` rows,
    returns the `(R * n, ...)` global tensor and the index of this replica's
    first row in it. Gradients flow back to each replica's own slice
    (`ReplicaContext.all_gather` is differentiable), as the SimCLR TPU code's
    `cross_replica_concat` does. Outside a strategy (and on JAX, where a
    `keras.distribution.DataParallel` step already computes on the global
    batch) it returns `(tensor, 0)`.

    Args:
        tensor: this replica's tensor, batch first.

    Returns:
        `(global_tensor, offset)`.

    Example:

    ```python
    keys, offset = cross_replica_concat(z)  # inside a train_step
    ```
    """
    context = _replica_context()
    if context is None:
        return tensor, 0
    import tensorflow as tf

    gathered = context.all_gather(tensor, axis=0)
    offset = tf.cast(context.replica_id_in_sync_group, "int32") * tf.shape(tensor)[0]
    return gathered, offset


def scale_loss_for_replicas(loss):
    """Divides a replica's loss by the number of replicas in sync.

    Keras sums the replicas' gradients under a `tf.distribute` strategy and
    its loss tracker multiplies the loss back; Keras's own `Loss` objects
    apply this scaling, so a `compute_loss` that computes its loss directly
    must apply it too. A no-op outside a multi-replica strategy.
    """
    replicas = num_replicas_in_sync()
    if replicas > 1:
        loss = loss / replicas
    return loss
