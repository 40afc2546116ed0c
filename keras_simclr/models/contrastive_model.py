"""SimCLR's model: two augmented views, one encoder, a projection head, NT-Xent,
and SimCLR v2's optional memory of negatives."""

import numbers

import keras
from keras import ops

from keras_simclr.distribute.cross_replica import cross_replica_concat
from keras_simclr.losses.nt_xent import contrastive_accuracy
from keras_simclr.losses.nt_xent import nt_xent_loss
from keras_simclr.models import momentum as momentum_lib
from keras_simclr.models.two_view_model import TwoViewModel
from keras_simclr.utils.tensors import l2_normalize


@keras.saving.register_keras_serializable(package="keras_simclr")
class ContrastiveModel(TwoViewModel):
    """SimCLR: two augmented views, one encoder, a projection head, NT-Xent.

    `fit` takes a batch of images when the model has an `augmenter` (two
    views of every image are drawn inside the compiled step), or ready
    `(view_a, view_b)` pairs when `augmenter=None` (for pipelines that
    augment in `tf.data`). Labels, when the data carries them as `y`, only
    train the optional online linear probe; they are never a view.

    Images enter as uint8, or as floats in [0, 1]: floats are never
    rescaled or clipped. The compiled step cannot check values, so `fit`
    checks its data where it enters and raises a `ValueError` naming what
    it received for float images above 1, a dataset of `(view_a, view_b)`
    that Keras would read as `(x, y)`, an explicit `y` without a probe, a
    batch of 1 image (e.g. the last partial one) and probe labels outside
    `[0, num_classes)`. On JAX, `fit` drops the last partial batch of array
    data, which would compile the step a second time (`drop_remainder` in
    `fit`).

    Training runs Keras's own `train_step` (tested on TensorFlow and JAX);
    this class supplies the forward pass (`call`) and the loss
    (`compute_loss`, one backend-agnostic method), so mixed-precision loss
    scaling, gradient aggregation across replicas and the stateless JAX step
    are Keras's. Under a `tf.distribute` strategy the projections of every
    replica are gathered once per step, so each anchor is scored against the
    negatives of the global batch (and the metrics are computed on the same
    global batch), and each replica's loss is divided by the replica count
    (as Keras's own losses are): the summed gradients equal the
    single-device gradients.

    The two views are encoded in one pass on the concatenated `2N` batch, so
    BatchNorm sees both views together, as in google-research/simclr.

    Logged metrics: `loss`, `contrastive_accuracy` (how often an anchor's
    positive scores highest among its `2N - 1` candidates), `z_std` (the
    mean per-dimension standard deviation of the L2-normalized projections:
    near `1/sqrt(dim)` when healthy, near 0 when the representation
    collapses) and, with `num_classes`, `probe_accuracy`.

    Validation: `fit(..., validation_data=...)` (or `validation_split`, or
    `evaluate`) takes data as `x` is taken (images, or `(view_a, view_b)`
    pairs with `augmenter=None`; labels for the probe as `y`) and logs the
    same metrics on it with a `val_` prefix: the training objective and its
    diagnostics on held-out images, read against the training values.
    - The views are the augmenter's, drawn from a fixed seed at every
      evaluation: every evaluation (and every run) scores the same pairs of
      views of an image, so the curve moves with the model, not with the
      draw. Training's random streams are put back after it.
    - The encoder runs in inference mode (BatchNorm moving statistics), as
      it runs after pretraining (kNN, linear evaluation, export).
    - A `ProjectionHead` normalizes with the statistics of the evaluated
      batch, as in training, and its moving averages are left alone. The
      head only serves the loss; in inference mode its moving averages,
      which lag the weights while they change fast, crowd the held-out
      projections together: on CIFAR-10 (ResNet-18 x0.25, batch 128, LARS
      1.0) `val_z_std` read 0.013 after the first epoch against 0.078 for
      `z_std`, a collapse that was not there; with the batch's statistics
      it reads 0.080 (random or fixed views made no difference). A head of
      another type runs in inference mode.
    The loss and `contrastive_accuracy` depend on the batch size (the other
    images of a batch are the negatives): compare them at the training
    batch size, `fit`'s default `validation_batch_size`.

    Memory (SimCLR v2, `memory_size > 0`): the model keeps a momentum copy
    of the encoder and the projection head, whose trainable weights are an
    exponential moving average of the model's (`copy = memory_momentum *
    copy + (1 - memory_momentum) * weight`, at the start of every training
    step; the first training step copies the weights), as MoCo's key
    encoder, and a queue of the `memory_size` latest L2-normalized
    projections of that copy. Every step the copy encodes the `2N` views
    too (without gradient; its BatchNorm moving statistics are its own);
    each anchor's negatives are then its `2N - 2` in-batch negatives and
    the `memory_size` rows of the queue (`nt_xent_loss(..., memory=...)`,
    no gradient into the queue), and `contrastive_accuracy` counts the
    queue's rows as negatives too. After the loss, the momentum projections
    of both views of the global batch (every replica's, gathered) are
    written over the oldest rows: first view a of every image, then view b.
    Every replica writes the same rows, so the queue is the same on all of
    them. The queue starts as random unit rows, as MoCo's does. It is a
    non-trainable variable, with its write position in a second one, so
    checkpoints and `.keras` files keep it and a resumed run goes on with
    it. Evaluation reads the queue and never writes it, nor moves the copy.
    `memory_size=0` (the default, and SimCLR v1) keeps none of this.

    Gradient caching (`micro_batch_size=k`, Gao et al. 2021): a batch too
    large for the device's memory trains exactly, `k` images at a time. The
    training step encodes the `2N` views in chunks of `k` images (both views
    of an image in the same chunk) keeping only their features and
    projections, computes NT-Xent and its gradient with respect to the
    projections on the whole (global) batch, then runs each chunk's forward
    pass again and back-propagates its share of that gradient. The gradients
    equal those of the whole batch for an encoder whose examples do not
    interact; with BatchNorm each chunk normalizes with its own statistics,
    exactly as a replica holding that chunk would with unsynchronized
    BatchNorm (the moving averages move by the mean of the chunks'
    updates), so synchronized BatchNorm is refused under several replicas.
    Peak activation memory is that of one chunk; the cost is one more
    forward pass of the encoder. It runs on TensorFlow (also under a
    `tf.distribute` strategy, each replica chunking its own share while the
    negatives are still gathered from all) and JAX, with mixed precision,
    the online probe and the memory (whose copy encodes in chunks too).
    Every training batch must split into chunks of `k` on every replica:
    `fit` drops a last partial batch of arrays by default and refuses other
    sizes before the first step. Evaluation runs unchunked.

    Args:
        encoder: a `keras.Model` mapping float32 images in [0, 1],
            `(batch, H, W, 3)`, to features h, `(batch, F)`; available
            after training as `model.encoder`. Any Keras image backbone
            works: a `keras.applications` model built with
            `include_top=False, pooling="avg"`, or a functional model whose
            output is a feature map `(batch, H, W, C)` (a keras-hub image
            backbone, e.g. `keras_hub.models.ResNetBackbone`), which is
            average-pooled (`keras_simclr.models.pooled_encoder`; then
            `model.encoder` is the pooled model). The images reach it in
            [0, 1]: for pretrained weights that expect their own input
            scaling, build it with `create_encoder("keras_hub:<preset>" |
            "keras_applications:<name>", ...)` or `pooled_encoder(...,
            preprocessing=InputScaling(...))`.
        projection_head: a layer mapping h to projections z (e.g.
            `ProjectionHead`).
        augmenter: a layer that draws one random view of each image in a
            batch (e.g. `keras_simclr.augment.SimCLRAugmentation`), or `None`
            to train on ready `(view_a, view_b)` pairs.
        temperature: NT-Xent temperature, > 0.
        num_classes: if set, an online linear probe (a Dense layer on
            `stop_gradient(h)`) is trained on the labels the batches carry
            and logged as `probe_accuracy`; it does not affect the encoder.
        memory_size: number of momentum projections kept as extra
            negatives (SimCLR v2: 65536); 0 (default): no memory. It must
            hold at least one step's projections, 2 x the global batch
            size. Needs an encoder and head that `from_config(get_config())`
            rebuilds (for the momentum copy).
        memory_momentum: momentum of the copy's moving average, in [0, 1)
            (MoCo: 0.999).
        micro_batch_size: images per chunk of gradient caching, a divisor
            of the per-replica batch size; `None` (default): the whole batch
            at once.
        **kwargs: forwarded to `keras.Model`.

    Raises:
        ValueError: a `memory_size` that is not a non-negative integer, a
            `memory_momentum` outside [0, 1), a temperature that is not
            positive, `num_classes` below 2, a `micro_batch_size` that is
            not a positive integer; in `fit`, batches that do not split
            into chunks of `micro_batch_size`; in the first training step,
            a `memory_size` below 2 x the global batch size.

    Example:

    ```python
    model = keras_simclr.models.ContrastiveModel(
        encoder=keras_simclr.models.ResNet(18, cifar_stem=True,
                                           input_shape=(32, 32, 3)),
        projection_head=keras_simclr.models.ProjectionHead(output_dim=128),
        augmenter=keras_simclr.augment.SimCLRAugmentation(32, preset="cifar"),
        temperature=0.5,
    )
    model.compile(optimizer=keras_simclr.optimizers.LARS(1.0))
    model.fit(uint8_images, batch_size=256, epochs=10,
              validation_data=(uint8_test_images,))
    features = model.encoder.predict(images / 255.0)
    ```

    SimCLR v2's memory, 4096 momentum projections as extra negatives:

    ```python
    model = keras_simclr.models.ContrastiveModel(
        encoder=keras_simclr.models.ResNet(18, cifar_stem=True,
                                           input_shape=(32, 32, 3)),
        projection_head=keras_simclr.models.ProjectionHead(num_layers=3),
        augmenter=keras_simclr.augment.SimCLRAugmentation(32, preset="cifar"),
        temperature=0.5,
        memory_size=4096,
    )
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020, algorithm 1.
        - Gao, Zhang, Han and Callan, Scaling Deep Contrastive Learning
          Batch Size under Memory Limited Setup, RepL4NLP 2021.
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners, NeurIPS 2020, section 2 (the memory network).
        - He et al., Momentum Contrast for Unsupervised Visual
          Representation Learning, CVPR 2020 (the momentum encoder and
          queue).
    """

    def __init__(
        self,
        encoder,
        projection_head,
        augmenter=None,
        temperature=0.1,
        num_classes=None,
        memory_size=0,
        memory_momentum=0.999,
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
        if (
            isinstance(memory_size, bool)
            or not isinstance(memory_size, numbers.Real)
            or not float(memory_size).is_integer()
            or memory_size < 0
        ):
            raise ValueError(
                "`memory_size` must be a non-negative integer (0: no memory). "
                f"Received: memory_size={memory_size!r}"
            )
        if (
            isinstance(memory_momentum, bool)
            or not isinstance(memory_momentum, numbers.Real)
            or not 0.0 <= float(memory_momentum) < 1.0
        ):
            raise ValueError(
                "`memory_momentum` must be in [0, 1). "
                f"Received: memory_momentum={memory_momentum!r}"
            )
        self.memory_size = int(memory_size)
        self.memory_momentum = float(memory_momentum)
        self.momentum_encoder = None
        self.momentum_projection_head = None
        self._momentum_indices = None
        if self.memory_size:
            self.momentum_encoder = momentum_lib.clone_layer(self.encoder, "momentum_")
            self.momentum_projection_head = momentum_lib.clone_layer(projection_head, "momentum_")
            self.momentum_update = momentum_lib.MomentumUpdate(
                self._momentum_pairs, name="momentum_update"
            )

    def build(self, input_shape):
        super().build(input_shape)
        if not self.memory_size:
            return
        (
            self._momentum_indices,
            self.memory_queue,
            self.memory_pointer,
            self.momentum_initialized,
        ) = momentum_lib.build_momentum_memory(
            self,
            [self.momentum_encoder, self.momentum_projection_head],
            self._image_shape(input_shape),
            self.memory_size,
            ("memory_queue", "memory_pointer", "momentum_initialized"),
        )
        self.built = True

    def _momentum_pairs(self):
        return momentum_lib.weight_pairs(
            [self.encoder, self.projection_head],
            [self.momentum_encoder, self.momentum_projection_head],
            self._momentum_indices,
        )

    def update_before_step(self):
        """With a memory: moves the momentum copy towards the encoder and
        head (a moving average of the trainable weights; the first training
        step copies them)."""
        if self.memory_size:
            momentum_lib.update_momentum_copy(
                self.momentum_update, self.momentum_initialized, self.memory_momentum
            )

    def forward(self, inputs, training=None):
        """Projections (and features) of the two views.

        With `training` false (`evaluate`, `predict`) the encoder runs in
        inference mode and a `ProjectionHead` normalizes with the batch's
        statistics, as in training, without updating its moving averages.

        With a memory, the momentum copy encodes the same views (it has
        moved in `update_before_step`, training only).

        Returns:
            dict with `"z"`: `(2N, d)` projections, view a of every image
            first; `"h"`: `(2N, F)` encoder features; with a memory,
            `"momentum_z"`: `(2N, d)` projections of the momentum copy (no
            gradient); and with `num_classes`, `"probe_logits"`: the online
            probe's logits on `stop_gradient(h)`.
        """
        views = self._views(inputs, training)
        features, z = self._encode(views, training)
        outputs = {"z": z, "h": features}
        if self.memory_size:
            _, momentum_z = self._encode(
                views,
                training,
                encoder=self.momentum_encoder,
                head=self.momentum_projection_head,
            )
            outputs["momentum_z"] = ops.stop_gradient(momentum_z)
        if self.probe is not None:
            outputs["probe_logits"] = self.probe(ops.stop_gradient(features))
        return outputs

    def probe_labels(self, y):
        # The probe sees both views of every image.
        return ops.concatenate([y, y], axis=0)

    def objective(self, x, y, y_pred, sample_weight=None, training=True):
        """NT-Xent over the global batch (and the memory, if any); updates
        `contrastive_accuracy` and `z_std` from the same gathered
        projections."""
        z_a, z_b = ops.split(ops.cast(y_pred["z"], "float32"), 2, axis=0)
        # The global batch, gathered once per step (outside a multi-replica
        # strategy the keys are z_a, z_b themselves).
        keys_a, offset = cross_replica_concat(z_a)
        keys_b, _ = cross_replica_concat(z_b)
        keys = (keys_a, keys_b)
        # Read before `update_after_loss` writes this step's rows.
        memory = self.memory_queue.value if self.memory_size else None
        loss = nt_xent_loss(
            z_a, z_b, temperature=self.temperature, keys=keys, offset=offset, memory=memory
        )
        self.contrastive_accuracy_tracker.update_state(
            contrastive_accuracy(z_a, z_b, keys=keys, offset=offset, memory=memory)
        )
        # Over the global batch, so z_std under a strategy is the
        # single-device value.
        self._update_z_std(l2_normalize(ops.concatenate(list(keys), axis=0)))
        return loss

    def update_after_loss(self, y_pred):
        """With a memory: writes the momentum projections of the global
        batch over the oldest rows of the queue (view a of every image,
        then view b, as on one device)."""
        if not self.memory_size:
            return
        momentum_a, momentum_b = ops.split(y_pred["momentum_z"], 2, axis=0)
        rows = ops.concatenate(
            [momentum_lib.gather_rows(momentum_a), momentum_lib.gather_rows(momentum_b)], axis=0
        )
        count = rows.shape[0]
        if count is not None and count > self.memory_size:
            raise ValueError(
                "The memory must hold at least one step's momentum projections, "
                "2 x the global batch size. Received: "
                f"memory_size={self.memory_size}, global batch of {count // 2} images"
            )
        momentum_lib.enqueue(self.memory_queue, self.memory_pointer, rows)

    def get_config(self):
        config = super().get_config()
        config.update({"memory_size": self.memory_size, "memory_momentum": self.memory_momentum})
        return config
