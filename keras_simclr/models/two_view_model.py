"""The shared base of SimCLR and MoCo: two views, an encoder, a projection
head, an optional online probe, `fit`'s data checks and fixed-seed
validation (not public API; see `ContrastiveModel` for the behaviour)."""

import keras
import numpy as np
from keras import ops

from keras_simclr.augment.image_utils import to_unit_float
from keras_simclr.distribute.cross_replica import num_replicas_in_sync
from keras_simclr.models import full_batches
from keras_simclr.models import input_checks
from keras_simclr.models import two_view_inputs
from keras_simclr.models.backbone_encoder import as_feature_encoder
from keras_simclr.models.base_model import BaseModel
from keras_simclr.models.gradient_cache import augment_in_chunks
from keras_simclr.models.gradient_cache import encode_in_chunks
from keras_simclr.models.projection_head import ProjectionHead
from keras_simclr.utils.validation import validate_micro_batch_size
from keras_simclr.utils.validation import validate_temperature

# Seed of the validation views (`evaluate`): the same in every run.
_VALIDATION_SEED = 20200213


class TwoViewModel(BaseModel):
    """Two views of every image, encoded and projected (`ContrastiveModel`,
    `MoCoModel`).

    Supplies the constructor's common part (`encoder`, `projection_head`,
    `augmenter`, `temperature`, `num_classes` and the metrics
    `contrastive_accuracy`, `z_std`, `probe_accuracy`), `build`, `fit` with
    its data checks, the views (`_views`), the projection outside training
    (`_project`) and `evaluate` on fixed views. Subclasses implement
    `forward` and `objective` (see `BaseModel`).

    Args: as `ContrastiveModel`.
    """

    _SUBLAYERS = ("encoder", "projection_head", "augmenter")

    # One `{}` placeholder: what was received.
    _TOO_SMALL_BATCH = (
        "{name} needs at least 2 images per batch: the other images of the "
        "batch are the negatives (a batch of 1 trains a step of zero loss). "
        "Received: {{}}"
    )

    def __init__(
        self,
        encoder,
        projection_head,
        augmenter=None,
        temperature=0.1,
        num_classes=None,
        micro_batch_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.temperature = validate_temperature(temperature)
        self.micro_batch_size = validate_micro_batch_size(micro_batch_size)
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(
                "`num_classes` must be at least 2 (or None for no probe). "
                f"Received: num_classes={num_classes}"
            )
        # A backbone whose output is a feature map (a keras-hub image
        # backbone) is average-pooled to features.
        self.encoder = as_feature_encoder(encoder)
        self.projection_head = projection_head
        self.augmenter = augmenter
        self.num_classes = None if num_classes is None else int(num_classes)
        self.probe = (
            keras.layers.Dense(self.num_classes, name="probe") if self.num_classes else None
        )
        self.contrastive_accuracy_tracker = keras.metrics.Mean(name="contrastive_accuracy")
        self.z_std_tracker = keras.metrics.Mean(name="z_std")
        self.probe_accuracy_tracker = (
            keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
            if self.num_classes
            else None
        )

    def build(self, input_shape):
        image_shape = self._image_shape(input_shape)
        if self.augmenter is not None and not self.augmenter.built:
            # Called in chunks through `stateless_call` under
            # `micro_batch_size`, which needs it built.
            self.augmenter.build(tuple(input_shape))
        if not self.encoder.built:
            self.encoder.build(image_shape)
        feature_shape = self.encoder.compute_output_shape(image_shape)
        if not self.projection_head.built:
            self.projection_head.build(feature_shape)
        if self.probe is not None and not self.probe.built:
            self.probe.build(feature_shape)
        self.built = True

    def _image_shape(self, input_shape):
        pair = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        if self.augmenter is None:
            if not pair or len(input_shape) != 2:
                raise two_view_inputs.pair_required(f"x of shape {input_shape}")
            image_shape = tuple(input_shape[0])
        else:
            if pair:
                raise two_view_inputs.images_required(f"x with shapes {input_shape}")
            self._check_images(tuple(input_shape), "x")
            image_shape = tuple(self.augmenter.compute_output_shape(input_shape))
        return image_shape

    def _check_images(self, shape, what):
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"ContrastiveModel expects {what} to be a batch of RGB images "
                f"of shape (batch, height, width, 3). Received: shape={tuple(shape)}"
            )
        if shape[0] is not None and shape[0] < 2:
            raise ValueError(self._too_small_batch().format(f"{what} of shape {tuple(shape)}"))

    def _too_small_batch(self):
        return self._TOO_SMALL_BATCH.format(name=type(self).__name__)

    def _input_checks(self):
        return two_view_inputs.TwoViewInputChecks(
            self.augmenter, self.num_classes, self._too_small_batch()
        )

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
            # A last partial batch would compile the JAX step again, and
            # rarely splits into chunks of `micro_batch_size`.
            drop_remainder = keras.backend.backend() == "jax" or self.micro_batch_size is not None
        elif not isinstance(drop_remainder, bool):
            raise ValueError(
                "`drop_remainder` must be True, False or None (drop on JAX "
                f"only). Received: drop_remainder={drop_remainder!r}"
            )
        checks = self._input_checks()
        x = checks.data(
            x,
            y,
            batch_size,
            validation_split,
            training=True,
            what="x",
            drop_remainder=drop_remainder,
        )
        if validation_data is not None:
            validation_data = checks.validation_data(validation_data)
        size = two_view_inputs.KERAS_DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
        if self.micro_batch_size is not None and steps_per_epoch is None:
            self._check_micro_batches(x, size, drop_remainder)
        array_views = two_view_inputs.array_views(self.augmenter, x, "x")
        if drop_remainder and steps_per_epoch is None and array_views:
            arrays = (x, y, sample_weight)
            if validation_split and validation_data is None:
                arrays, validation_data = full_batches.split_for_validation(
                    arrays, validation_split
                )
            x, y, sample_weight = arrays
            count = int(two_view_inputs.array_views(self.augmenter, x, "x")[0][1].shape[0])
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

    def _check_micro_batches(self, x, batch_size, drop_remainder):
        """Every training batch must split into chunks of `micro_batch_size`
        images on every replica; checked before the first step."""
        replicas = num_replicas_in_sync()
        chunk = self.micro_batch_size * replicas
        where = f" ({replicas} replicas)" if replicas > 1 else ""
        sizes = []
        if input_checks.is_tf_dataset(x):
            spec, _ = input_checks.split_element(x.element_spec)
            spec = spec[0] if isinstance(spec, tuple) else spec
            shape = input_checks.spec_shape(spec)
            if shape and shape[0] is None:
                raise ValueError(
                    "`micro_batch_size` needs batches of a fixed size: batch the "
                    "dataset with `drop_remainder=True`. Received: a dataset of "
                    f"batches of shape {tuple(shape)}"
                )
            sizes = [shape[0]] if shape else []
        else:
            views = two_view_inputs.array_views(self.augmenter, x, "x")
            if views:
                count = int(views[0][1].shape[0])
                sizes = [min(batch_size, count)]
                if not drop_remainder and count > batch_size and count % batch_size:
                    sizes.append(count % batch_size)
        for size in sizes:
            if size % chunk:
                raise ValueError(
                    f"Every batch must split into chunks of micro_batch_size="
                    f"{self.micro_batch_size} images on every replica{where}. "
                    f"Received: a batch of {size} images (choose a batch size "
                    f"that is a multiple of {chunk}, or drop_remainder=True)"
                )

    # -- views and projections ------------------------------------------------

    def _views(self, inputs, training=None):
        """Returns the 2N views, view a of every image first (drawn in
        chunks of `micro_batch_size` images in training)."""
        if self.augmenter is None:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise two_view_inputs.pair_required(
                    f"x of type {type(inputs).__name__} and shape {getattr(inputs, 'shape', None)}"
                )
            view_a, view_b = inputs
            self._check_images(view_a.shape, "view_a")
            self._check_images(view_b.shape, "view_b")
            if tuple(view_a.shape[1:]) != tuple(view_b.shape[1:]):
                raise ValueError(
                    "view_a and view_b must have the same image shape. "
                    f"Received: {tuple(view_a.shape)} and {tuple(view_b.shape)}"
                )
            return ops.concatenate([to_unit_float(view_a), to_unit_float(view_b)], axis=0)
        if isinstance(inputs, (list, tuple)):
            raise two_view_inputs.images_required(
                f"x as a {type(inputs).__name__} of {len(inputs)}"
            )
        self._check_images(inputs.shape, "x")
        if training and self.micro_batch_size is not None:
            # Gradient caching: the augmentation's intermediate images take
            # the memory of one chunk too.
            return augment_in_chunks(self.augmenter, inputs, self.micro_batch_size)
        # One augmenter call on [x; x]: every image gets two independent
        # random views (all random draws are per image).
        return self.augmenter(ops.concatenate([inputs, inputs], axis=0), training=True)

    def _encode(self, views, training, paired=True, encoder=None, head=None):
        """Features and projections of `views`: `(h, z)`.

        `encoder` and `head` default to the model's own. `paired`: the rows
        are `[view a of N images; view b of the same N]` (kept together when
        the batch is encoded in chunks); else any rows.
        """
        encoder = self.encoder if encoder is None else encoder
        head = self.projection_head if head is None else head
        if training and self.micro_batch_size is not None:
            return encode_in_chunks(encoder, head, views, self.micro_batch_size, paired=paired)
        features = encoder(views, training=training)
        return features, self._project(head, features, training)

    @staticmethod
    def _project(head, features, training):
        """`head(features)`; outside training a `ProjectionHead` normalizes
        with the batch's statistics (see "Validation" in `ContrastiveModel`'s
        docstring)."""
        if not training and isinstance(head, ProjectionHead):
            return head(features, training=False, batch_statistics=True)
        return head(features, training=training)

    def _update_z_std(self, z):
        """Logs the mean per-dimension std of the L2-normalized rows `z`."""
        self.z_std_tracker.update_state(ops.mean(ops.std(z, axis=0)))

    # -- validation -----------------------------------------------------------

    def _augmenter_seed_states(self):
        if self.augmenter is None:
            return []
        return [v for v in self.augmenter.variables if v.path.endswith("seed_generator_state")]

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
            state.assign(np.array([_VALIDATION_SEED + index, 0]).astype(state.dtype))
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            for state, value in zip(states, saved):
                state.assign(value)

    # -- serialization --------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.temperature,
                "num_classes": self.num_classes,
                "micro_batch_size": self.micro_batch_size,
            }
        )
        return config
