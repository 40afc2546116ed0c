"""MoCo v2's model: a momentum key encoder, a queue of negatives, InfoNCE."""

import keras
from keras import ops

from keras_simclr.losses.info_nce import info_nce_logits
from keras_simclr.models import momentum as momentum_lib
from keras_simclr.models.two_view_model import TwoViewModel
from keras_simclr.utils.tensors import l2_normalize


@keras.saving.register_keras_serializable(package="keras_simclr")
class MoCoModel(TwoViewModel):
    """MoCo v2: a momentum key encoder, a queue of negatives, InfoNCE.

    Each step draws two views of every image (or takes ready
    `(view_q, view_k)` pairs with `augmenter=None`). The query encoder and
    head (`encoder`, `projection_head`, trained by the optimizer) encode the
    first view into queries q; the key encoder and head, copies whose
    weights are an exponential moving average of the query weights
    (`key = momentum * key + (1 - momentum) * query`, applied at the start
    of every training step by `update_before_step`, as in the MoCo code; the
    first training step copies the query weights, as MoCo does at
    construction), encode the second view into keys k, without gradient.
    Every query is scored against its own key and the `queue_size` keys of
    earlier batches held in the queue (`info_nce_loss`); then
    `update_after_loss` writes the batch's keys over the oldest ones. The
    queue is a fixed-size ring buffer, a non-trainable variable updated in
    place inside the compiled step, with its write position in a second
    variable, so it is saved by checkpoints and `.keras` files.

    BatchNorm leakage: a query and its key must not see the same BatchNorm
    batch statistics, or the model can find its positive through them.
    MoCo shuffles the keys across GPUs before the key encoder ("shuffling
    BN"). Here the keys of each replica are shuffled and encoded in
    `shuffle_bn_splits` groups, so each key's statistics come from a random
    subset of other images, as the MoCo CIFAR demo's split BatchNorm does on
    one device. Build the encoder with unsynchronized BatchNorm for MoCo:
    synchronized BatchNorm would pool the groups' statistics again.

    Only the query parameters are trained; the key encoder's BatchNorm
    moving statistics come from its own forward passes (MoCo averages
    parameters, not buffers). `model.encoder` is the query encoder, the one
    to evaluate and export.

    `fit` and validation are as `ContrastiveModel`'s (see its `fit` for the
    last partial batch, dropped on JAX, and its class docstring for
    `validation_data`): validation views are drawn from a fixed seed, the
    encoders run in inference mode and a `ProjectionHead` normalizes with
    the batch's statistics; evaluation reads the queue and does not write
    it.

    Args:
        encoder: a `keras.Model` mapping float32 images in [0, 1] to
            features h; its key copy is built from its config.
        projection_head: a layer mapping h to projections (MoCo v2: a
            2-layer MLP); copied the same way.
        augmenter: a layer drawing one random view of each image (e.g.
            `SimCLRAugmentation(size, preset="moco_v2")`), or `None` for
            ready `(view_q, view_k)` pairs.
        temperature: InfoNCE temperature, > 0 (MoCo v2: 0.2).
        queue_size: number of negative keys K (MoCo: 65536; MoCo's CIFAR
            demo uses 4096). At least the global batch size.
        momentum: key encoder EMA momentum m in [0, 1) (MoCo: 0.999).
        shuffle_bn_splits: number of groups the key batch is shuffled into
            for BatchNorm; must divide the per-replica batch size. 1 turns
            it off.
        num_classes: if set, an online linear probe on `stop_gradient(h)`
            of the queries, trained on the labels the batches carry and
            logged as `probe_accuracy`.
        seed: seed of the key shuffling and of the initial queue; `None`:
            random (fixed by `keras.utils.set_random_seed`).
        micro_batch_size: images per chunk of gradient caching for the
            query encoder (see `ContrastiveModel`): each query's loss reads
            only its own key and the queue, so chunks change nothing but
            BatchNorm's batch (each chunk normalizes alone) and the memory;
            the key encoder runs without gradient, in its
            `shuffle_bn_splits` groups. `None` (default): unchunked.
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    model = keras_simclr.models.MoCoModel(
        encoder=keras_simclr.models.ResNet(18, cifar_stem=True,
                                           input_shape=(32, 32, 3)),
        projection_head=keras_simclr.models.ProjectionHead(
            hidden_dim=2048, output_dim=128),
        augmenter=keras_simclr.augment.SimCLRAugmentation(
            32, preset="moco_v2"),
        queue_size=4096,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.03, momentum=0.9))
    model.fit(uint8_images, batch_size=256, epochs=10)
    ```

    References:
        - He et al., Momentum Contrast for Unsupervised Visual
          Representation Learning, CVPR 2020, algorithm 1 and section 3.3
          (shuffling BN).
        - Chen et al., Improved Baselines with Momentum Contrastive Learning
          (MoCo v2), 2020.
    """

    # One `{}` placeholder: what was received (see `ContrastiveModel.fit`).
    _TOO_SMALL_BATCH = (
        "{name} needs at least 2 images per batch: the encoders' BatchNorm "
        "normalizes each feature over the batch, which maps a single image "
        "to constants. Received: {{}}"
    )

    def __init__(
        self,
        encoder,
        projection_head,
        augmenter=None,
        temperature=0.2,
        queue_size=65536,
        momentum=0.999,
        shuffle_bn_splits=8,
        num_classes=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            encoder,
            projection_head,
            augmenter=augmenter,
            temperature=temperature,
            num_classes=num_classes,
            **kwargs,
        )
        if isinstance(queue_size, bool) or int(queue_size) != queue_size or queue_size < 1:
            raise ValueError(
                f"`queue_size` must be a positive integer. Received: queue_size={queue_size}"
            )
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum}")
        if (
            isinstance(shuffle_bn_splits, bool)
            or int(shuffle_bn_splits) != shuffle_bn_splits
            or shuffle_bn_splits < 1
        ):
            raise ValueError(
                "`shuffle_bn_splits` must be a positive integer. "
                f"Received: shuffle_bn_splits={shuffle_bn_splits}"
            )
        self.queue_size = int(queue_size)
        self.momentum = float(momentum)
        self.shuffle_bn_splits = int(shuffle_bn_splits)
        self.seed = seed
        self.key_encoder = momentum_lib.clone_layer(self.encoder, "key_")
        self.key_projection_head = momentum_lib.clone_layer(projection_head, "key_")
        self.momentum_update = momentum_lib.MomentumUpdate(
            self._momentum_pairs, name="momentum_update"
        )
        self.shuffle_seed_generator = keras.random.SeedGenerator(seed)
        self._momentum_indices = None

    def build(self, input_shape):
        super().build(input_shape)
        # Parameters only (MoCo averages parameters, not BN buffers).
        (
            self._momentum_indices,
            self.queue,
            self.queue_pointer,
            self.key_initialized,
        ) = momentum_lib.build_momentum_memory(
            self,
            [self.key_encoder, self.key_projection_head],
            self._image_shape(input_shape),
            self.queue_size,
            ("queue", "queue_pointer", "key_initialized"),
            seed=self.seed,
        )
        self.built = True

    def _momentum_pairs(self):
        return momentum_lib.weight_pairs(
            [self.encoder, self.projection_head],
            [self.key_encoder, self.key_projection_head],
            self._momentum_indices,
        )

    def _encode_keys(self, views, training):
        splits = self.shuffle_bn_splits if training else 1
        batch = views.shape[0]
        if splits == 1:
            features = self.key_encoder(views, training=training)
            return self._project(self.key_projection_head, features, training)
        if batch is not None and batch % splits:
            raise ValueError(
                "MoCoModel shuffles the keys into `shuffle_bn_splits` BatchNorm "
                "groups, which must divide the per-replica batch size. "
                f"Received: batch of {batch}, shuffle_bn_splits={splits}"
            )
        size = ops.shape(views)[0]
        order = ops.argsort(keras.random.uniform((size,), seed=self.shuffle_seed_generator))
        groups = ops.split(ops.take(views, order, axis=0), splits, axis=0)
        keys = ops.concatenate(
            [
                self.key_projection_head(
                    self.key_encoder(group, training=training), training=training
                )
                for group in groups
            ],
            axis=0,
        )
        return ops.take(keys, ops.argsort(order), axis=0)

    def update_before_step(self):
        """Moves the key encoder towards the query encoder (a moving average
        of the trainable weights; the first training step copies them)."""
        momentum_lib.update_momentum_copy(self.momentum_update, self.key_initialized, self.momentum)

    def forward(self, inputs, training=None):
        """Queries, keys and InfoNCE logits against the queue.

        The key encoder has moved in `update_before_step` (training only);
        the queue is read here and written in `update_after_loss`.

        Returns:
            dict with `"z"`: `(N, d)` queries; `"h"`: `(N, F)` query
            features; `"k"`: `(N, d)` keys (no gradient); `"logits"`: the
            `(N, 1 + K)` InfoNCE logits, positive first; and with
            `num_classes`, `"probe_logits"`.
        """
        views = self._views(inputs, training)
        view_q, view_k = ops.split(views, 2, axis=0)
        # Chunked with gradient caching under `micro_batch_size`: every
        # query's loss reads only its own key and the queue.
        features, query = self._encode(view_q, training, paired=False)
        key = ops.stop_gradient(self._encode_keys(view_k, training))
        outputs = {
            "z": query,
            "h": features,
            "k": key,
            "logits": info_nce_logits(
                ops.cast(query, "float32"),
                ops.cast(key, "float32"),
                self.queue.value,
                self.temperature,
            ),
        }
        if self.probe is not None:
            outputs["probe_logits"] = self.probe(ops.stop_gradient(features))
        return outputs

    def _enqueue(self, keys):
        keys = momentum_lib.gather_rows(keys)
        count = keys.shape[0]
        if count is not None and count > self.queue_size:
            raise ValueError(
                "The queue must hold at least one global batch of keys. "
                f"Received: queue_size={self.queue_size}, global batch of {count}"
            )
        momentum_lib.enqueue(self.queue, self.queue_pointer, keys)

    def update_after_loss(self, y_pred):
        """Writes the batch's keys (every replica's) over the oldest ones."""
        self._enqueue(y_pred["k"])

    def objective(self, x, y, y_pred, sample_weight=None, training=True):
        """InfoNCE of the queries; updates `contrastive_accuracy` and
        `z_std` (over this replica's queries)."""
        logits = y_pred["logits"]
        loss = ops.mean(ops.logsumexp(logits, axis=1) - logits[:, 0])
        # Strict: a tie with a negative does not count as a hit.
        self.contrastive_accuracy_tracker.update_state(
            ops.mean(ops.cast(logits[:, 0] > ops.max(logits[:, 1:], axis=1), "float32"))
        )
        self._update_z_std(l2_normalize(ops.cast(y_pred["z"], "float32")))
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "queue_size": self.queue_size,
                "momentum": self.momentum,
                "shuffle_bn_splits": self.shuffle_bn_splits,
                "seed": self.seed,
            }
        )
        return config
