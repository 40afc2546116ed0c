import keras
from keras import ops

from keras_simclr.augment.image_utils import to_unit_float
from keras_simclr.distribute.cross_replica import cross_replica_concat
from keras_simclr.distribute.cross_replica import scale_loss_for_replicas
from keras_simclr.losses.nt_xent import _normalize
from keras_simclr.losses.nt_xent import contrastive_accuracy
from keras_simclr.losses.nt_xent import nt_xent_loss
from keras_simclr.losses.nt_xent import validate_temperature
from keras_simclr.models.sublayer_config import deserialize_sublayers
from keras_simclr.models.sublayer_config import serialize_sublayers


# Constructor arguments that are layers (serialized as such in get_config).
_SUBLAYERS = ("encoder", "projection_head", "augmenter")


def _pair_required(received):
    return ValueError(
        "With `augmenter=None`, ContrastiveModel takes a pair (view_a, view_b) "
        "as x. If your dataset yields (view_a, view_b), map it to "
        "((view_a, view_b),) or ((view_a, view_b), labels). "
        f"Received: {received}"
    )


def _images_required(received):
    return ValueError(
        "ContrastiveModel has an augmenter, so x must be a batch of images; "
        f"to train on ready views pass augmenter=None. Received: {received}"
    )


@keras.saving.register_keras_serializable(package="keras_simclr")
class ContrastiveModel(keras.Model):
    """SimCLR: two augmented views, one encoder, a projection head, NT-Xent.

    `fit` takes a batch of images when the model has an `augmenter` (two
    views of every image are drawn inside the compiled step), or ready
    `(view_a, view_b)` pairs when `augmenter=None` (for pipelines that
    augment in `tf.data`). Labels, when the data carries them as `y`, only
    train the optional online linear probe; they are never a view.

    Training runs Keras's own `train_step` (tested on TensorFlow and JAX);
    this class supplies the forward pass (`call`) and the loss
    (`compute_loss`, one backend-agnostic method), so mixed-precision loss
    scaling, gradient aggregation across replicas and the stateless JAX step
    are Keras's. Under a `tf.distribute` strategy the projections of every
    replica are gathered, so each anchor is scored against the negatives of
    the global batch, and each replica's loss is divided by the replica count
    (as Keras's own losses are): the summed gradients equal the
    single-device gradients.

    The two views are encoded in one pass on the concatenated `2N` batch, so
    BatchNorm sees both views together, as in google-research/simclr.

    Logged metrics: `loss`, `contrastive_accuracy` (how often an anchor's
    positive scores highest among its `2N - 1` candidates), `z_std` (the
    mean per-dimension standard deviation of the L2-normalized projections:
    near `1/sqrt(dim)` when healthy, near 0 when the representation
    collapses) and, with `num_classes`, `probe_accuracy`.

    Args:
        encoder: a `keras.Model` mapping float32 images in [0, 1],
            `(batch, H, W, 3)`, to features h, `(batch, F)`; available
            after training as `model.encoder`.
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
    model.fit(uint8_images, batch_size=256, epochs=10)
    features = model.encoder.predict(images / 255.0)
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020, algorithm 1.
    """

    def __init__(
        self,
        encoder,
        projection_head,
        augmenter=None,
        temperature=0.1,
        num_classes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.temperature = validate_temperature(temperature)
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(
                "`num_classes` must be at least 2 (or None for no probe). "
                f"Received: num_classes={num_classes}"
            )
        self.encoder = encoder
        self.projection_head = projection_head
        self.augmenter = augmenter
        self.num_classes = None if num_classes is None else int(num_classes)
        self.probe = (
            keras.layers.Dense(self.num_classes, name="probe")
            if self.num_classes
            else None
        )
        self.contrastive_accuracy_tracker = keras.metrics.Mean(
            name="contrastive_accuracy"
        )
        self.z_std_tracker = keras.metrics.Mean(name="z_std")
        self.probe_accuracy_tracker = (
            keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
            if self.num_classes
            else None
        )

    def build(self, input_shape):
        image_shape = self._image_shape(input_shape)
        if not self.encoder.built:
            self.encoder.build(image_shape)
        feature_shape = self.encoder.compute_output_shape(image_shape)
        if not self.projection_head.built:
            self.projection_head.build(feature_shape)
        if self.probe is not None and not self.probe.built:
            self.probe.build(feature_shape)
        self.built = True

    def _image_shape(self, input_shape):
        pair = isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)
        )
        if self.augmenter is None:
            if not pair or len(input_shape) != 2:
                raise _pair_required(f"x of shape {input_shape}")
            image_shape = tuple(input_shape[0])
        else:
            if pair:
                raise _images_required(f"x with shapes {input_shape}")
            self._check_images(tuple(input_shape), "x")
            image_shape = tuple(self.augmenter.compute_output_shape(input_shape))
        return image_shape

    @staticmethod
    def _check_images(shape, what):
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"ContrastiveModel expects {what} to be a batch of RGB images "
                f"of shape (batch, height, width, 3). Received: shape={tuple(shape)}"
            )
        if shape[0] is not None and shape[0] < 2:
            raise ValueError(
                "NT-Xent needs at least 2 images per batch (the other images "
                f"are the negatives). Received: {what} of shape {tuple(shape)}"
            )

    def _views(self, inputs):
        """Returns the 2N views, view a of every image first."""
        if self.augmenter is None:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise _pair_required(
                    f"x of type {type(inputs).__name__} and shape "
                    f"{getattr(inputs, 'shape', None)}"
                )
            view_a, view_b = inputs
            self._check_images(view_a.shape, "view_a")
            self._check_images(view_b.shape, "view_b")
            if tuple(view_a.shape[1:]) != tuple(view_b.shape[1:]):
                raise ValueError(
                    "view_a and view_b must have the same image shape. "
                    f"Received: {tuple(view_a.shape)} and {tuple(view_b.shape)}"
                )
            return ops.concatenate(
                [to_unit_float(view_a), to_unit_float(view_b)], axis=0
            )
        if isinstance(inputs, (list, tuple)):
            raise _images_required(
                f"x as a {type(inputs).__name__} of {len(inputs)}"
            )
        self._check_images(inputs.shape, "x")
        # One augmenter call on [x; x]: every image gets two independent
        # random views (all random draws are per image).
        return self.augmenter(
            ops.concatenate([inputs, inputs], axis=0), training=True
        )

    def call(self, inputs, training=None):
        """Projections (and features) of the two views.

        Returns:
            dict with `"z"`: `(2N, d)` projections, view a of every image
            first; `"h"`: `(2N, F)` encoder features; and with `num_classes`,
            `"probe_logits"`: the online probe's logits on `stop_gradient(h)`.
        """
        views = self._views(inputs)
        features = self.encoder(views, training=training)
        outputs = {
            "z": self.projection_head(features, training=training),
            "h": features,
        }
        if self.probe is not None:
            outputs["probe_logits"] = self.probe(ops.stop_gradient(features))
        return outputs

    def _split(self, z):
        z_a, z_b = ops.split(ops.cast(z, "float32"), 2, axis=0)
        return z_a, z_b

    def _global_keys(self, z_a, z_b):
        # Outside a multi-replica strategy the keys are z_a, z_b themselves.
        keys_a, offset = cross_replica_concat(z_a)
        keys_b, _ = cross_replica_concat(z_b)
        return (keys_a, keys_b), offset

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        z_a, z_b = self._split(y_pred["z"])
        keys, offset = self._global_keys(z_a, z_b)
        loss = nt_xent_loss(
            z_a, z_b, temperature=self.temperature, keys=keys, offset=offset
        )
        if self.probe is not None and y is not None:
            labels = ops.concatenate([y, y], axis=0)
            loss = loss + ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels,
                    ops.cast(y_pred["probe_logits"], "float32"),
                    from_logits=True,
                )
            )
        # Losses added by layers (e.g. kernel regularizers), if any.
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        # Under tf.distribute, Keras sums the replicas' gradients: each
        # replica contributes its loss / R, as Keras's own Loss objects do.
        return scale_loss_for_replicas(loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        z_a, z_b = self._split(y_pred["z"])
        keys, offset = self._global_keys(z_a, z_b)
        self.contrastive_accuracy_tracker.update_state(
            contrastive_accuracy(z_a, z_b, keys=keys, offset=offset)
        )
        z = _normalize(ops.concatenate([z_a, z_b], axis=0))
        self.z_std_tracker.update_state(ops.mean(ops.std(z, axis=0)))
        if self.probe_accuracy_tracker is not None and y is not None:
            self.probe_accuracy_tracker.update_state(
                ops.concatenate([y, y], axis=0), y_pred["probe_logits"]
            )
        return self.get_metrics_result()

    def get_config(self):
        config = super().get_config()
        config.update(serialize_sublayers(self, _SUBLAYERS))
        config.update(
            {"temperature": self.temperature, "num_classes": self.num_classes}
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_sublayers(config, _SUBLAYERS))
