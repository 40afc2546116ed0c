import math

import keras
from keras import ops

# Added to the logits an anchor must not score (itself): exp() of it is 0 in
# float32, and it stays finite so 0 * it is 0 in the gradient.
_MASK = -1e9


def validate_temperature(temperature):
    """Returns `temperature` as a float, or raises if it is not > 0."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            "`temperature` must be a positive finite number. "
            f"Received: temperature={temperature}"
        )
    return value


def _check_pair(z_a, z_b):
    if len(z_a.shape) != 2 or tuple(z_a.shape) != tuple(z_b.shape):
        raise ValueError(
            "`z_a` and `z_b` must be (batch, dim) tensors of the same shape. "
            f"Received: z_a.shape={tuple(z_a.shape)}, z_b.shape={tuple(z_b.shape)}"
        )
    if z_a.shape[0] is not None and z_a.shape[0] < 2:
        raise ValueError(
            "NT-Xent needs at least 2 pairs: with one image there are no "
            f"negatives. Received: z_a.shape={tuple(z_a.shape)}"
        )


def _normalize(z):
    z = ops.cast(z, "float32")
    return z / ops.maximum(ops.norm(z, axis=-1, keepdims=True), 1e-12)


def _logits(z_a, z_b, keys, offset, temperature):
    """Logits of the 2n local anchors against the 2M keys, and the labels.

    Row i of the view-a half scores: [keys_b (M), keys_a (M)]; its positive
    is keys_b[offset + i] (column offset + i) and its own copy,
    keys_a[offset + i] (column M + offset + i), is masked out. The view-b
    half is symmetric.
    """
    _check_pair(z_a, z_b)
    z_a, z_b = _normalize(z_a), _normalize(z_b)
    if keys is None:
        keys_a, keys_b = z_a, z_b
    else:
        keys_a, keys_b = _normalize(keys[0]), _normalize(keys[1])
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
    labels = ops.concatenate([positives, positives], axis=0)
    return logits, labels


def nt_xent_loss(z_a, z_b, temperature=0.1, keys=None, offset=0):
    """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR.

    Each of the 2N projections is an anchor; its positive is the other view
    of the same image and its negatives are the other 2N - 2 projections.
    Logits are cosine similarities divided by `temperature`. Returns the mean
    over the 2N anchors of the softmax cross-entropy. Computed in float32
    whatever the input dtype (mixed precision).

    Under data parallelism, pass the projections of the global batch as
    `keys` and this replica's position in it as `offset`: the local anchors
    are then scored against every replica's negatives, and the mean of the
    per-replica losses equals the single-device loss on the global batch.

    Args:
        z_a: (N, d) projections of the first view of N images.
        z_b: (N, d) projections of the second view, in the same order.
        temperature: softmax temperature, > 0 (SimCLR: 0.1 on ImageNet, 0.5
            on CIFAR).
        keys: optional `(keys_a, keys_b)`, each (M, d): the projections of
            the global batch (this replica's included) from every replica.
            `None`: the keys are `z_a`, `z_b` (one device).
        offset: index of this replica's first pair within `keys` (0 on one
            device); may be a tensor (`replica_id * N`).

    Returns:
        scalar float32 loss.

    Example:

    ```python
    loss = nt_xent_loss(projection_head(encoder(view_a)),
                        projection_head(encoder(view_b)), temperature=0.5)
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020, eq. 1 and algorithm 1.
    """
    temperature = validate_temperature(temperature)
    logits, labels = _logits(z_a, z_b, keys, offset, temperature)
    return ops.mean(
        ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )


def contrastive_accuracy(z_a, z_b, keys=None, offset=0):
    """Fraction of the 2N anchors whose positive scores highest.

    Each anchor's positive competes with its 2M - 2 negatives (`M = N`
    on one device); the anchor itself is excluded. Arguments as for
    `nt_xent_loss`. Returns a float32 scalar in [0, 1].

    Example:

    ```python
    accuracy = contrastive_accuracy(z_a, z_b)
    ```
    """
    logits, labels = _logits(z_a, z_b, keys, offset, temperature=1.0)
    predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
    return ops.mean(ops.cast(ops.equal(predicted, labels), "float32"))


@keras.saving.register_keras_serializable(package="keras_simclr")
class NTXent(keras.losses.Loss):
    """NT-Xent as a `keras.losses.Loss`: `NTXent(0.1)(z_a, z_b)`.

    The two arguments of a Keras loss, `(y_true, y_pred)`, carry the two
    views' projections `(z_a, z_b)`; see `nt_xent_loss`.

    Args:
        temperature: softmax temperature, > 0.
        **kwargs: forwarded to `keras.losses.Loss` (e.g. `name`).

    Example:

    ```python
    loss = NTXent(temperature=0.5)(z_a, z_b)
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020, eq. 1.
    """

    def __init__(self, temperature=0.1, name="nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = validate_temperature(temperature)

    def call(self, y_true, y_pred):
        return nt_xent_loss(y_true, y_pred, temperature=self.temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
