"""SimCLR's model: two augmented views, one encoder, a projection head, NT-Xent."""

import keras
from keras import ops

from keras_simclr.distribute.cross_replica import cross_replica_concat
from keras_simclr.losses.nt_xent import contrastive_accuracy
from keras_simclr.losses.nt_xent import nt_xent_loss
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
        **kwargs: forwarded to `keras.Model`.

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

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020, algorithm 1.
    """

    def forward(self, inputs, training=None):
        """Projections (and features) of the two views.

        With `training` false (`evaluate`, `predict`) the encoder runs in
        inference mode and a `ProjectionHead` normalizes with the batch's
        statistics, as in training, without updating its moving averages.

        Returns:
            dict with `"z"`: `(2N, d)` projections, view a of every image
            first; `"h"`: `(2N, F)` encoder features; and with `num_classes`,
            `"probe_logits"`: the online probe's logits on `stop_gradient(h)`.
        """
        views = self._views(inputs)
        features, z = self._encode(views, training)
        outputs = {"z": z, "h": features}
        if self.probe is not None:
            outputs["probe_logits"] = self.probe(ops.stop_gradient(features))
        return outputs

    def probe_labels(self, y):
        # The probe sees both views of every image.
        return ops.concatenate([y, y], axis=0)

    def objective(self, x, y, y_pred, sample_weight=None, training=True):
        """NT-Xent over the global batch; updates `contrastive_accuracy` and
        `z_std` from the same gathered projections."""
        z_a, z_b = ops.split(ops.cast(y_pred["z"], "float32"), 2, axis=0)
        # The global batch, gathered once per step (outside a multi-replica
        # strategy the keys are z_a, z_b themselves).
        keys_a, offset = cross_replica_concat(z_a)
        keys_b, _ = cross_replica_concat(z_b)
        keys = (keys_a, keys_b)
        loss = nt_xent_loss(z_a, z_b, temperature=self.temperature, keys=keys, offset=offset)
        self.contrastive_accuracy_tracker.update_state(
            contrastive_accuracy(z_a, z_b, keys=keys, offset=offset)
        )
        # Over the global batch, so z_std under a strategy is the
        # single-device value.
        self._update_z_std(l2_normalize(ops.concatenate(list(keys), axis=0)))
        return loss
