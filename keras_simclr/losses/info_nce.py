"""InfoNCE against a queue of negative keys, MoCo's contrastive loss."""

from keras import ops

from keras_simclr.utils.tensors import compatible_shapes
from keras_simclr.utils.tensors import l2_normalize
from keras_simclr.utils.tensors import static_shape
from keras_simclr.utils.validation import validate_temperature


def _check_inputs(query, key, queue):
    shape_q, shape_k = static_shape(query), static_shape(key)
    if len(shape_q) != 2 or not compatible_shapes(shape_q, shape_k):
        raise ValueError(
            "`query` and `key` must be (batch, dim) tensors of the same shape. "
            f"Received: query.shape={shape_q}, key.shape={shape_k}"
        )
    shape_queue = static_shape(queue)
    if len(shape_queue) != 2 or not compatible_shapes(shape_queue[1:], shape_q[1:]):
        raise ValueError(
            "`queue` must be a (queue_size, dim) tensor with the dim of "
            f"`query`. Received: queue.shape={shape_queue}, "
            f"query.shape={shape_q}"
        )


def info_nce_logits(query, key, queue, temperature=0.2):
    """Logits of MoCo's (K + 1)-way classification; the positive is column 0.

    Args:
        query: (N, d) query projections; L2-normalized inside.
        key: (N, d) key projections of the other view of the same images;
            L2-normalized inside.
        queue: (K, d) negative keys, used as given (MoCo stores them
            L2-normalized).
        temperature: softmax temperature, > 0.

    Returns:
        float32 logits of shape (N, 1 + K): `[q.k, q.queue_1, ..., q.queue_K]
        / temperature`.
    """
    temperature = validate_temperature(temperature)
    _check_inputs(query, key, queue)
    query, key = l2_normalize(query), l2_normalize(key)
    positive = ops.sum(query * key, axis=-1, keepdims=True)
    negatives = ops.matmul(query, ops.transpose(ops.cast(queue, "float32")))
    return ops.concatenate([positive, negatives], axis=1) / temperature


def info_nce_loss(query, key, queue, temperature=0.2):
    """InfoNCE of queries against their keys and a queue of negatives.

    Each query's positive is the key of the same image (the other view,
    encoded by the momentum encoder); its negatives are the K keys in the
    queue. The loss is the mean over the N queries of the softmax
    cross-entropy of the (K + 1)-way logits with the positive as label.
    Gradients flow into `query` and `key` as given; MoCo passes keys that
    are already `stop_gradient`-ed.

    Args:
        query: (N, d) query projections; L2-normalized inside.
        key: (N, d) key projections; L2-normalized inside.
        queue: (K, d) negative keys, used as given (already normalized).
        temperature: softmax temperature, > 0 (MoCo v2: 0.2).

    Returns:
        A float32 scalar.

    Example:

    >>> q = keras.random.normal((8, 128))
    >>> k = q + 0.1 * keras.random.normal((8, 128))
    >>> queue = keras.random.normal((4096, 128))
    >>> queue = queue / keras.ops.norm(queue, axis=1, keepdims=True)
    >>> loss = keras_simclr.losses.info_nce_loss(q, k, queue, temperature=0.2)

    References:
        - He et al., Momentum Contrast for Unsupervised Visual
          Representation Learning, CVPR 2020, eq. 1 and algorithm 1.
        - Chen et al., Improved Baselines with Momentum Contrastive Learning
          (MoCo v2), 2020.
    """
    logits = info_nce_logits(query, key, queue, temperature)
    return ops.mean(ops.logsumexp(logits, axis=1) - logits[:, 0])
