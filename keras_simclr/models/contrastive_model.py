import keras
import numpy as np
from keras import ops

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.augment.image_utils import to_unit_float
from keras_simclr.distribute.cross_replica import cross_replica_concat
from keras_simclr.distribute.cross_replica import scale_loss_for_replicas
from keras_simclr.losses.nt_xent import contrastive_accuracy
from keras_simclr.losses.nt_xent import nt_xent_loss
from keras_simclr.models import full_batches
from keras_simclr.models import input_checks
from keras_simclr.models.projection_head import ProjectionHead
from keras_simclr.models.sublayer_config import deserialize_sublayers
from keras_simclr.models.sublayer_config import serialize_sublayers
from keras_simclr.utils.tensors import l2_normalize
from keras_simclr.utils.validation import validate_temperature


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


def _pair_read_as_x_y(augmenter, shapes):
    if augmenter is None:
        advice = "map it to ((view_a, view_b),) or ((view_a, view_b), labels)"
    else:
        advice = (
            "this model has an augmenter and draws its own two views of x: "
            "give it the images alone, or pass augmenter=None and map the "
            "dataset to ((view_a, view_b),)"
        )
    return ValueError(
        "The dataset yields two image batches, which Keras reads as (x, y): "
        "the second view would be taken for labels. If it yields "
        f"(view_a, view_b), {advice}. Received: a dataset of elements with "
        f"shapes {shapes}"
    )


# Seed of the validation views (`evaluate`): the same in every run.
_VALIDATION_SEED = 20200213

# Keras's batch size for arrays when `fit` is not given one.
_KERAS_DEFAULT_BATCH_SIZE = 32


@keras.saving.register_keras_serializable(package="keras_simclr")
class ContrastiveModel(keras.Model):
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
    model.fit(uint8_images, batch_size=256, epochs=10,
              validation_data=(uint8_test_images,))
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

    # One `{}` placeholder: what was received.
    _TOO_SMALL_BATCH = (
        "{name} needs at least 2 images per batch: the other images of the "
        "batch are the negatives (a batch of 1 trains a step of zero loss). "
        "Received: {{}}"
    )

    def _check_images(self, shape, what):
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"ContrastiveModel expects {what} to be a batch of RGB images "
                f"of shape (batch, height, width, 3). Received: shape={tuple(shape)}"
            )
        if shape[0] is not None and shape[0] < 2:
            raise ValueError(
                self._too_small_batch().format(f"{what} of shape {tuple(shape)}")
            )

    def _too_small_batch(self):
        return self._TOO_SMALL_BATCH.format(name=type(self).__name__)

    # -- input checks (where the values are concrete) -----------------------

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
        drop_remainder=None,
    ):
        """`keras.Model.fit`, after checking the data where it enters.

        The compiled step cannot check values (XLA drops assertions; JAX
        cannot branch on values), so they are checked here: NumPy arrays and
        eager tensors directly, a `tf.data.Dataset` by its `element_spec`
        and, where a value must be read (float images, a batch size unknown
        before the data runs, probe labels), by an assertion mapped over its
        batches in tf.data. uint8 batches of a static size are not touched.
        Other inputs (a `PyDataset`, a generator) go to Keras unchecked.
        `validation_data` gets the same checks but the batch size.

        The last partial batch: NumPy arrays (and eager tensors) are
        batched by Keras, which ends every epoch with a smaller batch when
        `batch_size` does not divide the number of training images. On JAX
        each new batch shape compiles the whole training step again, once
        per model and shape (2,000 CIFAR images at batch 128, ResNet-18
        x0.25 with `SimCLRAugmentation`, 2 CPU cores: the first partial
        step took 5.6 s against 1.0 s for a full one; 20-34 s has been seen
        with larger models), so on JAX that last partial batch is dropped
        by default, as `tf.data`'s `batch(drop_remainder=True)` drops it and
        as google-research/simclr trains: every epoch is a new random order
        (`shuffle=True`) cut into `N // batch_size` full batches, so an
        epoch leaves out `N % batch_size` images, others each epoch, and the
        step compiles once. A contrastive batch cannot be padded instead: padded
        images would enter the BatchNorm statistics and the negatives. Data
        smaller than one batch still trains, as one batch. On TensorFlow the
        partial batch trains, as in Keras. `drop_remainder` chooses either
        on any backend. A `tf.data.Dataset`, a `PyDataset` or a generator is
        batched by you (`batch(..., drop_remainder=True)` for the same
        effect) and `steps_per_epoch` keeps Keras's batching; validation data
        is never dropped from.

        Args: as `keras.Model.fit`, and:
            drop_remainder: for array `x`, whether to drop the last partial
                batch of every epoch; `None` (default): drop it on JAX, keep
                it on other backends.

        Returns:
            the `History` of `keras.Model.fit`.

        Raises:
            ValueError: `y` is given and the model has no online probe
                (`num_classes=None`; labels inside a dataset are fine);
                float images outside [0, 1] (or integer ones outside
                [0, 255]); a dataset yielding two image batches
                (`(view_a, view_b)` read as `(x, y)`); a batch of fewer
                than 2 images (e.g. a last partial batch of 1 that is not
                dropped); labels outside `[0, num_classes)`.
        """
        if y is not None and self.probe is None:
            raise ValueError(
                f"{type(self).__name__} has no online probe (num_classes=None), "
                "so `y` would not be used: labels only train the probe, they "
                "are never a view. Pass num_classes=... to train a probe, or "
                "leave y out. Received: y of type "
                f"{type(y).__name__} and shape {getattr(y, 'shape', None)}"
            )
        if drop_remainder is None:
            drop_remainder = keras.backend.backend() == "jax"
        elif not isinstance(drop_remainder, bool):
            raise ValueError(
                "`drop_remainder` must be True, False or None (drop on JAX "
                f"only). Received: drop_remainder={drop_remainder!r}"
            )
        x = self._checked_data(
            x,
            y,
            batch_size,
            validation_split,
            training=True,
            what="x",
            drop_remainder=drop_remainder,
        )
        if validation_data is not None:
            validation_data = self._checked_validation_data(validation_data)
        size = _KERAS_DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
        if drop_remainder and steps_per_epoch is None and self._array_views(x, "x"):
            arrays = (x, y, sample_weight)
            if validation_split and validation_data is None:
                arrays, validation_data = full_batches.split_for_validation(
                    arrays, validation_split
                )
            x, y, sample_weight = arrays
            count = int(self._array_views(x, "x")[0][1].shape[0])
            if count > size and count % size:
                x = full_batches.FullBatches(x, y, sample_weight, size, shuffle)
                y = sample_weight = None
                validation_batch_size = validation_batch_size or size
                batch_size = None
                # FullBatches shuffles the examples; Keras would only
                # shuffle the order of the batches.
                shuffle = False
            validation_split = 0.0
        with input_checks.raise_input_errors():
            return super().fit(
                x=x,
                y=y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_split=validation_split,
                validation_data=validation_data,
                shuffle=shuffle,
                class_weight=class_weight,
                sample_weight=sample_weight,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                validation_batch_size=validation_batch_size,
                validation_freq=validation_freq,
            )

    def _checked_validation_data(self, data):
        if input_checks.is_tf_dataset(data):
            return self._checked_data(
                data, None, None, 0.0, training=False, what="validation x"
            )
        if isinstance(data, (list, tuple)) and 1 <= len(data) <= 3:
            val_x, val_y = data[0], data[1] if len(data) > 1 else None
            self._checked_data(
                val_x, val_y, None, 0.0, training=False, what="validation x"
            )
        return data

    def _array_views(self, x, what):
        """`[(name, images)]` of array inputs; [] if x is not arrays (then
        `build`/`call` say what is wrong with it)."""
        if self.augmenter is not None:
            return [(what, x)] if input_checks.is_array(x) else []
        if (
            isinstance(x, (list, tuple))
            and len(x) == 2
            and all(input_checks.is_array(v) for v in x)
        ):
            return [("view_a", x[0]), ("view_b", x[1])]
        return []

    def _checked_data(
        self, x, y, batch_size, validation_split, training, what, drop_remainder=False
    ):
        """Checks `x` (and `y`); returns `x`, a checked copy for a dataset."""
        if input_checks.is_tf_dataset(x):
            return self._checked_dataset(x, training, what)
        views = self._array_views(x, what)
        for name, images in views:
            check_image_range(images, name)
        if views and training:
            count = int(views[0][1].shape[0])
            if validation_split:
                # As Keras splits the arrays.
                count = int(np.floor(count * (1.0 - validation_split)))
            size = _KERAS_DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
            # A last batch of 1 is dropped with `drop_remainder` (unless it
            # is the only batch).
            dropped = drop_remainder and count > size
            if size < 2 or (count % size == 1 and not dropped):
                raise ValueError(
                    self._too_small_batch().format(
                        f"{count} training images with batch_size={size}, "
                        "which leaves a batch of 1 image"
                    )
                )
        if y is not None and self.probe is not None:
            input_checks.check_labels(y, self.num_classes, "y")
        return x

    def _checked_dataset(self, dataset, training, what):
        spec = dataset.element_spec
        if isinstance(spec, dict):
            return dataset
        x_spec, y_spec = input_checks.split_element(spec)
        y_shape = input_checks.spec_shape(y_spec)
        if y_shape is not None and len(y_shape) >= 3:
            raise _pair_read_as_x_y(
                self.augmenter, input_checks.element_shapes(spec)
            )
        if self.augmenter is not None:
            names, view_specs = [what], [x_spec]
        else:
            names = ["view_a", "view_b"]
            view_specs = list(x_spec) if isinstance(x_spec, tuple) else []
        if len(view_specs) != len(names) or not all(
            input_checks.spec_shape(s) for s in view_specs
        ):
            return dataset  # not images: `build` says what is wrong
        check_range = [input_checks.needs_range_check(s.dtype) for s in view_specs]
        batch = input_checks.spec_shape(view_specs[0])[0]
        if training and batch is not None and batch < 2:
            raise ValueError(
                self._too_small_batch().format(
                    f"a dataset of batches of shape {input_checks.element_shapes(spec)}"
                )
            )
        check_batch = training and batch is None
        check_labels = self.probe is not None and y_spec is not None
        if not (any(check_range) or check_batch or check_labels):
            return dataset  # e.g. uint8 batches of a static size, no probe
        num_classes = self.num_classes
        too_small = self._too_small_batch().format(
            "a batch of {} image(s) from the dataset (batch it with "
            "drop_remainder=True to drop a last partial batch)"
        )

        def assertions(element):
            x, y = input_checks.split_element(element)
            views = [x] if self.augmenter is not None else list(x)
            checks = [
                input_checks.image_range_assertion(images, name)
                for images, name, needed in zip(views, names, check_range)
                if needed
            ]
            if check_batch:
                checks.append(input_checks.batch_size_assertion(views[0], 2, too_small))
            if check_labels:
                checks.append(input_checks.label_range_assertion(y, num_classes, "y"))
            return checks

        return input_checks.map_checks(dataset, assertions)

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

    @staticmethod
    def _project(head, features, training):
        """`head(features)`; outside training a `ProjectionHead` normalizes
        with the batch's statistics (see "Validation" in the class
        docstring)."""
        if not training and isinstance(head, ProjectionHead):
            return head(features, training=False, batch_statistics=True)
        return head(features, training=training)

    def _augmenter_seed_states(self):
        if self.augmenter is None:
            return []
        return [
            v for v in self.augmenter.variables if v.path.endswith("seed_generator_state")
        ]

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate` (and `fit`'s validation) on fixed views.

        The augmenter's random streams are set to a fixed seed for the
        evaluation and put back after it, so every evaluation, in every run,
        scores the same two views of each image (given the same data, order
        and batch size) and training draws what it would have drawn without
        the evaluation. Arguments and return value: as `keras.Model.evaluate`.
        """
        states = self._augmenter_seed_states()
        saved = [np.array(ops.convert_to_numpy(state)) for state in states]
        for index, state in enumerate(states):
            state.assign(
                np.array([_VALIDATION_SEED + index, 0]).astype(state.dtype)
            )
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            for state, value in zip(states, saved):
                state.assign(value)

    def call(self, inputs, training=None):
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
        features = self.encoder(views, training=training)
        outputs = {
            "z": self._project(self.projection_head, features, training),
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
        # Over the global batch (the gathered keys; z_a, z_b themselves on
        # one device), so z_std under a strategy is the single-device value.
        z = l2_normalize(ops.concatenate(list(keys), axis=0))
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
