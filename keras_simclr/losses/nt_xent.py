"""NT-Xent, SimCLR's contrastive loss: a function and a thin `Loss` class."""

import keras
from keras import ops

from keras_simclr.utils.tensors import compatible_shapes
from keras_simclr.utils.tensors import l2_normalize
from keras_simclr.utils.tensors import static_shape
from keras_simclr.utils.validation import validate_temperature

# Added to the logits an anchor must not score (its own copy): exp() of it
# underflows to exactly 0 in float32, and it stays finite, so the masked
# entries get a gradient of exactly 0 instead of nan. The logits are always
# float32 (inputs are cast first), where -1e9 is representable; it would
# overflow float16. google-research/simclr uses the same LARGE_NUM.
_MASK = -1e9


def _check_inputs(z_a, z_b, keys):
    shape_a, shape_b = static_shape(z_a), static_shape(z_b)
    if len(shape_a) != 2 or not compatible_shapes(shape_a, shape_b):
        raise ValueError(
            "`z_a` and `z_b` must be (batch, dim) tensors of the same shape. "
            f"Received: z_a.shape={shape_a}, z_b.shape={shape_b}"
        )
    if keys is None:
        if shape_a[0] is not None and shape_a[0] < 2:
            raise ValueError(
                "NT-Xent needs at least 2 pairs: with one image there are no "
                f"negatives. Received: z_a.shape={shape_a}"
            )
        return
    if not isinstance(keys, (tuple, list)) or len(keys) != 2:
        raise ValueError(
            "`keys` must be a pair `(keys_a, keys_b)` of (global_batch, dim) "
            f"tensors. Received: keys of type {type(keys).__name__}"
        )
    shape_ka, shape_kb = static_shape(keys[0]), static_shape(keys[1])
    if (
        len(shape_ka) != 2
        or not compatible_shapes(shape_ka, shape_kb)
        or not compatible_shapes(shape_ka[1:], shape_a[1:])
    ):
        raise ValueError(
            "`keys` must be two (global_batch, dim) tensors of the same shape, "
            "with the dim of `z_a`. Received: "
            f"keys_a.shape={shape_ka}, keys_b.shape={shape_kb}, "
            f"z_a.shape={shape_a}"
        )
    if shape_ka[0] is not None and shape_ka[0] < 2:
        raise ValueError(
            "NT-Xent needs at least 2 pairs in the global batch: with one image "
            f"there are no negatives. Received: keys_a.shape={shape_ka}"
        )
    if shape_ka[0] is not None and shape_a[0] is not None and shape_a[0] > shape_ka[0]:
        raise ValueError(
            "The global batch `keys` must contain the local batch. "
            f"Received: z_a.shape={shape_a}, keys_a.shape={shape_ka}"
        )


def _check_memory(memory, z_a):
    shape_m, shape_a = static_shape(memory), static_shape(z_a)
    if len(shape_m) != 2 or not compatible_shapes(shape_m[1:], shape_a[1:]):
        raise ValueError(
            "`memory` must be a (memory_size, dim) tensor of negatives with the "
            f"dim of `z_a`. Received: memory.shape={shape_m}, z_a.shape={shape_a}"
        )


def _logits(z_a, z_b, keys, offset, temperature, memory=None):
    """float32 logits of the 2n local anchors against the 2M keys, and labels.

    As google-research/simclr's `add_contrastive_loss`: row i of the view-a
    half scores `[keys_b (M), keys_a (M)]`; its positive is
    `keys_b[offset + i]` (column `offset + i`) and its own copy
    `keys_a[offset + i]` (column `M + offset + i`) is masked out. The view-b
    half is the mirror image, with the same label. A `memory` of K rows
    appends K columns of negatives to every row, after the 2M keys.
    """
    _check_inputs(z_a, z_b, keys)
    if memory is not None:
        _check_memory(memory, z_a)
    z_a, z_b = l2_normalize(z_a), l2_normalize(z_b)
    if keys is None:
        keys_a, keys_b = z_a, z_b
    else:
        keys_a, keys_b = l2_normalize(keys[0]), l2_normalize(keys[1])
    n = ops.shape(z_a)[0]
    m = ops.shape(keys_a)[0]
    positives = ops.arange(n, dtype="int32") + ops.cast(offset, "int32")
    self_mask = ops.one_hot(positives, m, dtype="float32") * _MASK
    inv_t = 1.0 / temperature
    logits_ab = ops.matmul(z_a, ops.transpose(keys_b)) * inv_t
    logits_aa = ops.matmul(z_a, ops.transpose(keys_a)) * inv_t + self_mask
    logits_ba = ops.matmul(z_b, ops.transpose(keys_a)) * inv_t
    logits_bb = ops.matmul(z_b, ops.transpose(keys_b)) * inv_t + self_mask
    logits = ops.concatenate(
        [
            ops.concatenate([logits_ab, logits_aa], axis=1),
            ops.concatenate([logits_ba, logits_bb], axis=1),
        ],
        axis=0,
    )
    if memory is not None:
        # Constants to the loss: no gradient reaches the memory's rows.
        memory = ops.stop_gradient(l2_normalize(memory))
        anchors = ops.concatenate([z_a, z_b], axis=0)
        memory_logits = ops.matmul(anchors, ops.transpose(memory)) * inv_t
        logits = ops.concatenate([logits, memory_logits], axis=1)
    labels = ops.concatenate([positives, positives], axis=0)
    return logits, labels


def nt_xent_loss(z_a, z_b, temperature=0.1, keys=None, offset=0, memory=None):
    """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR.

    Each of the 2N projections is an anchor; its positive is the other view
    of the same image and its negatives are the other 2N - 2 projections.
    Logits are cosine similarities divided by `temperature` (both inputs are
    L2-normalized here). Returns the mean over the 2N anchors of the softmax
    cross-entropy. Computed in float32 whatever the input dtype (bfloat16 or
    float16 under mixed precision are cast first).

    Under data parallelism, pass the projections of the global batch as
    `keys` and this replica's position in it as `offset`: the 2n local
    anchors are scored against all 2M keys (every replica's negatives), and
    the mean over replicas of the per-replica losses, and its gradients
    (with gradients flowing through the gather of `keys`), equal the
    single-device loss on the global batch.

    With `memory` (SimCLR v2's memory of negatives, e.g. a queue of a
    momentum encoder's projections from earlier batches), every anchor is
    also scored against the K memory rows: its negatives are the 2N - 2
    others and the K memory rows. The memory is L2-normalized here and
    held constant: no gradient flows into it.

    Args:
        z_a: (N, d) projections of the first view of N images.
        z_b: (N, d) projections of the second view, in the same order.
        temperature: softmax temperature, a positive float (SimCLR: 0.1 on
            ImageNet, 0.5 on CIFAR-10).
        keys: optional `(keys_a, keys_b)`, each (M, d): the projections of
            the global batch gathered from every replica, this replica's
            included, in replica order (normalized here). `None`: the keys
            are `z_a`, `z_b` (one device).
        offset: index of this replica's first pair within `keys` (0 on one
            device); an int or an int tensor (`replica_id * N`).
        memory: optional (K, d) extra negatives, the same for every anchor
            (normalized here; no gradient). `None`: none.

    Returns:
        A float32 scalar.

    Raises:
        ValueError: `z_a` and `z_b` are not (N, d) tensors of one shape, a
            batch of one pair, `keys` that are not two (M, d) tensors
            holding the local batch, a `memory` that is not (K, d), or a
            temperature that is not a positive number.

    Example:

    ```python
    z_a = projection_head(encoder(view_a))
    z_b = projection_head(encoder(view_b))
    loss = nt_xent_loss(z_a, z_b, temperature=0.5)
    # SimCLR v2: 4096 earlier momentum projections as extra negatives.
    loss = nt_xent_loss(z_a, z_b, temperature=0.1, memory=queue)
    ```

    References:
        - [Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020](https://arxiv.org/abs/2002.05709),
          eq. 1 and Algorithm 1.
        - [Chen et al., Big Self-Supervised Models are Strong
          Semi-Supervised Learners, NeurIPS 2020](https://arxiv.org/abs/2006.10029),
          section 2 (the memory network).
    """
    temperature = validate_temperature(temperature)
    logits, labels = _logits(z_a, z_b, keys, offset, temperature, memory)
    return ops.mean(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def contrastive_accuracy(z_a, z_b, keys=None, offset=0, memory=None):
    """Fraction of the 2N anchors whose positive scores highest.

    Each anchor's positive competes with its 2M - 2 negatives (`M = N` on
    one device) and the K rows of `memory`, if any; the anchor's own copy
    is excluded. An anchor counts as correct only if its positive scores
    strictly higher than every negative, so collapsed (identical)
    embeddings score 0, not 1 / N. Arguments and errors as for
    `nt_xent_loss`.

    Returns:
        A float32 scalar in [0, 1].

    Example:

    ```python
    accuracy = contrastive_accuracy(z_a, z_b)
    accuracy_with_memory = contrastive_accuracy(z_a, z_b, memory=queue)
    ```
    """
    logits, labels = _logits(z_a, z_b, keys, offset, temperature=1.0, memory=memory)
    positive_mask = ops.one_hot(labels, ops.shape(logits)[1], dtype="float32")
    positive = ops.sum(logits * positive_mask, axis=1)
    best_negative = ops.max(logits + positive_mask * _MASK, axis=1)
    return ops.mean(ops.cast(ops.greater(positive, best_negative), "float32"))


@keras.saving.register_keras_serializable(package="keras_simclr")
class NTXent(keras.losses.Loss):
    """NT-Xent as a `keras.losses.Loss`, called `NTXent(0.1)(z_a, z_b)`.

    A Keras loss is called as `loss(y_true, y_pred)`; here the two slots
    carry the two views' projections: `y_true` is `z_a` and `y_pred` is
    `z_b`, each (N, d), and there are no labels. The loss is symmetric, so
    the order does not matter. See `nt_xent_loss` for the math. The value is
    already a mean over the batch (every anchor depends on the whole batch),
    so `sample_weight` is not supported.

    Args:
        temperature: softmax temperature, a positive float.
        **kwargs: forwarded to `keras.losses.Loss` (`name`, `reduction`,
            `dtype`).

    Example:

    ```python
    loss_fn = NTXent(temperature=0.5)
    loss = loss_fn(projection_head(encoder(view_a)),
                   projection_head(encoder(view_b)))
    ```

    References:
        - [Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020](https://arxiv.org/abs/2002.05709),
          eq. 1.
    """

    def __init__(self, temperature=0.1, name="nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = validate_temperature(temperature)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                "NTXent does not support `sample_weight`: every anchor's loss "
                "depends on the whole batch. Received: sample_weight of shape "
                f"{getattr(sample_weight, 'shape', None)}"
            )
        return super().__call__(y_true, y_pred)

    def call(self, y_true, y_pred):
        return nt_xent_loss(y_true, y_pred, temperature=self.temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
