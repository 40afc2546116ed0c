"""Linear evaluation: a linear classifier trained on frozen encoder features.

Written in `keras.ops` (no TensorFlow import): it runs on every backend.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.augment.image_utils import to_unit_float
from keras_simclr.evaluation.forward import batches_split_evenly
from keras_simclr.evaluation.forward import distribution_for_fit
from keras_simclr.evaluation.forward import predict_batch
from keras_simclr.evaluation.forward import predict_in_batches
from keras_simclr.evaluation.knn import _extract_features
from keras_simclr.evaluation.knn import _is_tf_dataset
from keras_simclr.evaluation.knn import _split_element
from keras_simclr.evaluation.knn import check_labelled_arrays
from keras_simclr.evaluation.knn import resolve_encoder
from keras_simclr.models import input_checks
from keras_simclr.models.sublayer_config import deserialize_sublayers
from keras_simclr.models.sublayer_config import serialize_sublayers


@keras.saving.register_keras_serializable(package="keras_simclr")
class _RandomCropFlip(keras.layers.Layer):
    """Per-image random crop with zero padding and horizontal flip.

    In training, each image is zero-padded by `padding` pixels on every side,
    a window of the original size is cut at an offset drawn per image, and
    the window is mirrored left-right with probability 1/2 (drawn per image).
    In inference it returns the images unchanged.
    """

    def __init__(self, padding=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        pad = self.padding
        padded = ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        top = keras.random.randint(
            (batch,), 0, 2 * pad + 1, dtype="int32", seed=self.seed_generator
        )
        left = keras.random.randint(
            (batch,), 0, 2 * pad + 1, dtype="int32", seed=self.seed_generator
        )
        flip = keras.random.uniform((batch,), seed=self.seed_generator) < 0.5
        rows = top[:, None] + ops.arange(height, dtype="int32")[None, :]
        cols = left[:, None] + ops.arange(width, dtype="int32")[None, :]
        # Reading the window's columns backwards mirrors it.
        cols = ops.where(flip[:, None], ops.flip(cols, axis=1), cols)
        out = ops.take_along_axis(
            padded,
            ops.broadcast_to(
                rows[:, :, None, None], (batch, height, width + 2 * pad, channels)
            ),
            axis=1,
        )
        return ops.take_along_axis(
            out,
            ops.broadcast_to(cols[:, None, :, None], (batch, height, width, channels)),
            axis=2,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "seed": self.seed})
        return config


class _FrozenEncoderClassifier(keras.Model):
    """images -> [uint8 to [0, 1]] -> [crop/flip] -> frozen encoder -> classifier."""

    def __init__(self, encoder, classifier, augmentation=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.classifier = classifier
        self.augmentation = augmentation

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.classifier.built:
            self.classifier.build(self.encoder.compute_output_shape(input_shape))
        self.built = True

    def call(self, images, training=None):
        x = to_unit_float(images)
        if self.augmentation is not None:
            x = self.augmentation(x, training=training)
        # The encoder always runs in inference mode (BatchNorm moving stats).
        features = ops.stop_gradient(self.encoder(x, training=False))
        return self.classifier(ops.cast(features, "float32"))


class _Standardize(keras.layers.Layer):
    """Fixed per-feature standardization `(x - mean) * scale` (not trained)."""

    def __init__(self, mean, scale, **kwargs):
        super().__init__(**kwargs)
        self._mean_value = np.asarray(mean, "float32")
        self._scale_value = np.asarray(scale, "float32")

    def build(self, input_shape):
        shape = self._mean_value.shape
        self.mean = self.add_weight(
            shape=shape,
            initializer=keras.initializers.Constant(self._mean_value),
            trainable=False,
            name="mean",
        )
        self.scale = self.add_weight(
            shape=shape,
            initializer=keras.initializers.Constant(self._scale_value),
            trainable=False,
            name="scale",
        )

    def call(self, inputs):
        return (inputs - self.mean) * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape


def _folded_classifier(standardize, linear, feature_dim):
    """One Dense layer on raw h equal to `linear(standardize(h))`.

    `W ((h - m) * s) + b = (s W) h + (b - (m s) W)`.
    """
    mean = ops.convert_to_numpy(standardize.mean).astype("float64")
    scale = ops.convert_to_numpy(standardize.scale).astype("float64")
    kernel = ops.convert_to_numpy(linear.kernel).astype("float64")
    bias = ops.convert_to_numpy(linear.bias).astype("float64")
    folded = keras.layers.Dense(linear.units, name="linear")
    classifier = keras.Sequential(
        [keras.Input((feature_dim,)), folded], name="linear_classifier"
    )
    folded.set_weights(
        [
            (scale[:, None] * kernel).astype("float32"),
            (bias - (mean * scale) @ kernel).astype("float32"),
        ]
    )
    return classifier


def _make_optimizer(optimizer, schedule, momentum, weight_decay):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if optimizer == "sgd":
        return keras.optimizers.SGD(
            schedule,
            momentum=momentum,
            nesterov=True,
            weight_decay=weight_decay or None,
        )
    if optimizer == "lars":
        # Imported here so this module does not depend on it at import time.
        from keras_simclr.optimizers import LARS

        return LARS(schedule, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(
        "optimizer must be 'sgd', 'lars' or a keras.optimizers.Optimizer. "
        f"Received: optimizer={optimizer!r}"
    )


class _FrozenTrainability:
    """Sets `encoder.trainable = False`; restores every layer and variable flag on exit."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __enter__(self):
        # Parents come before their children, so restoring in this order
        # leaves each layer with its own original flag.
        self.layer_flags = [
            (layer, layer.trainable)
            for layer in self.encoder._flatten_layers(include_self=True, recursive=True)
        ]
        self.variable_flags = [(v, v.trainable) for v in self.encoder.variables]
        self.encoder.trainable = False
        return self

    def __exit__(self, *exc):
        for layer, flag in self.layer_flags:
            layer.trainable = flag
        for variable, flag in self.variable_flags:
            variable.trainable = flag
        return False


def _image_input(train_data):
    """Returns `(image_shape, dtype)` of the images of a dataset of batches."""
    if _is_tf_dataset(train_data):
        spec, label_spec = _split_element(train_data.element_spec)
        if label_spec is None:
            raise ValueError(
                "train_data must yield (images, labels) batches. "
                f"Received: a dataset of {train_data.element_spec}"
            )
        return tuple(spec.shape[-3:]), spec.dtype.name
    images = train_data[0]
    return tuple(images.shape[1:]), str(images.dtype)


def _dataset_steps(dataset):
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    if cardinality == -1:  # INFINITE_CARDINALITY
        raise ValueError(
            "train_data is an infinite dataset (repeat()); linear_evaluation "
            "needs a finite epoch. Received: a dataset of infinite cardinality"
        )
    return sum(1 for _ in dataset)


def _labelled_features(encoder, data, batch_size, num_classes, name):
    """Features and labels of `data`, its images and labels checked."""
    features, labels = _extract_features(encoder, data, batch_size, f"{name} images")
    return features, input_checks.check_labels(labels, num_classes, f"{name} labels")


def _checked_train_input(train_data, num_classes):
    """A training dataset mapped through the image and label checks (run in
    tf.data, as `fit` reads it inside `raise_input_errors`)."""
    return input_checks.checked_images(
        train_data, "train_data images", num_classes, "train_data labels"
    )


def _top_k_accuracy(logits, labels, k):
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def _as_labelled_arrays(data, name):
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and hasattr(data[0], "shape")
        and hasattr(data[1], "shape")
    ):
        return np.asarray(data[0]), np.asarray(data[1]).reshape(-1)
    if _is_tf_dataset(data):
        return None
    raise ValueError(
        f"{name} must be (images, labels) arrays or a tf.data.Dataset of "
        f"(images, labels) batches. Received: {type(data).__name__}"
    )


def linear_evaluation(
    model_or_encoder,
    train_data,
    test_data,
    num_classes,
    epochs=90,
    batch_size=256,
    learning_rate=0.1,
    optimizer="sgd",
    augment=True,
    momentum=0.9,
    weight_decay=0.0,
    standardize_features=True,
    padding=4,
    seed=None,
    verbose=0,
):
    """Linear evaluation protocol: a linear classifier on frozen features h.

    The encoder (the backbone, whose output h is the layer before the
    projection head) is frozen and runs in inference mode; a
    `Dense(num_classes)` classifier on h is trained with softmax
    cross-entropy, `model.fit`, and a cosine learning-rate decay
    (`keras.optimizers.schedules.CosineDecay` over all steps) with SGD
    (momentum 0.9, Nesterov) or `keras_simclr.optimizers.LARS`. By default
    the features are standardized first (see `standardize_features`).

    Two modes:

    - `augment=True`: the training model is
      `images -> random crop with padding + horizontal flip -> frozen encoder
      -> Dense`, the augmentation in `keras.ops` inside the model, drawn per
      image every step. The encoder runs on every training batch of every
      epoch: faithful to the protocol, slower.
    - `augment=False`: the features of the training images are extracted
      once and the classifier is fit on them: much faster, usually slightly
      lower accuracy for long runs.

    Test accuracy is measured on the un-augmented test images in both modes.
    The encoder's weights (BatchNorm statistics included) are not changed,
    and its `trainable` flags are restored afterwards.

    Distributed models: features and test logits are computed one row per
    image under a `tf.distribute` strategy (see `extract_features`). Under a
    JAX `keras.distribution` the classifier trains data-parallel when every
    training batch splits evenly over the devices; otherwise (Keras's JAX
    `fit` refuses such a batch) it is made and trained without the
    distribution, which is restored afterwards.

    Args:
        model_or_encoder: the encoder `keras.Model`, or a model with an
            `.encoder` attribute (e.g. `ContrastiveModel`).
        train_data: `(images, labels)` NumPy arrays (uint8, or float in
            [0, 1]; shuffled every epoch) or a finite `tf.data.Dataset` of
            `(images, labels)` batches (shuffle it yourself).
        test_data: the test set, in the same forms.
        num_classes: number of classes.
        epochs: training epochs (SimCLR: 90 on ImageNet).
        batch_size: batch size for arrays.
        learning_rate: peak learning rate of the cosine decay (SimCLR's rule
            for large batches: 0.1 x batch_size / 256).
        optimizer: `"sgd"` (Nesterov momentum), `"lars"`, or a
            `keras.optimizers.Optimizer` instance (then `learning_rate`,
            `momentum` and `weight_decay` are not used).
        augment: see the two modes above.
        momentum: momentum of SGD / LARS.
        weight_decay: weight decay (decoupled for SGD, in the update rule
            for LARS).
        standardize_features: train the Dense layer on standardized
            features `(h - mean) / std` (fixed statistics of the
            un-augmented training features; constant features are dropped),
            then fold the standardization into the Dense weights. The
            classifier stays one linear layer on h; standardizing only
            conditions the optimization, like the affine-free BatchNorm of
            MAE's linear probe, and matters most for short schedules or
            features of small scale. `False`: the plain SimCLR protocol
            (Dense on raw h). With `augment=True` it costs one extra pass
            over the training images.
        padding: zero padding of the random crop, in pixels.
        seed: seed of the augmentation and of the classifier's initializer.
        verbose: verbosity of `fit`.

    Raises:
        ValueError: an argument out of range; float images outside [0, 1]
            (integer ones outside [0, 255]) or labels outside
            `[0, num_classes)`, naming what was received (arrays are checked
            before training, datasets as they are read).

    Returns:
        dict with `"top1"` and `"top5"` test accuracy (Python floats; top-5
        is 1.0 when `num_classes <= 5`), `"classifier"` (a `keras.Model`
        mapping features h to logits: one `Dense` layer named `"linear"`,
        the standardization folded into its weights), `"train_loss"` (per
        epoch) and
        `"history"` (the `fit` history dict).

    Example:

    ```python
    result = linear_evaluation(model, (x_train, y_train), (x_test, y_test),
                               num_classes=10, epochs=100)
    print(result["top1"], result["top5"])
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, ICML 2020, appendix B.5 (linear evaluation).
        - Kolesnikov et al., Revisiting Self-Supervised Visual
          Representation Learning, CVPR 2019 (linear evaluation protocol).
    """
    encoder = resolve_encoder(model_or_encoder, caller="linear_evaluation")
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1. Received: epochs={epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0. Received: learning_rate={learning_rate}")
    epochs, batch_size = int(epochs), int(batch_size)
    train_arrays = _as_labelled_arrays(train_data, "train_data")
    _as_labelled_arrays(test_data, "test_data")
    check_labelled_arrays(train_data, num_classes, "train_data")
    check_labelled_arrays(test_data, num_classes, "test_data")

    test_features, test_labels = _labelled_features(
        encoder, test_data, batch_size, num_classes, "test_data"
    )
    feature_dim = test_features.shape[1]
    train_features = train_labels = None
    if standardize_features or not augment:
        train_features, train_labels = _labelled_features(
            encoder, train_data, batch_size, num_classes, "train_data"
        )
    # Keras's data-parallel JAX fit refuses a batch that does not split over
    # the devices: then the probe is made and trained without the distribution.
    if augment and train_arrays is None:
        even = batches_split_evenly(batch_size, dataset=train_data)
    else:
        num_train = len(train_arrays[0]) if augment else len(train_features)
        even = batches_split_evenly(batch_size, num_examples=num_train)
    with distribution_for_fit(even):
        linear = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
            name="linear",
        )
        if standardize_features:
            mean = train_features.mean(axis=0)
            std = train_features.std(axis=0)
            # Constant (e.g. dead ReLU) features are left out instead of blown up.
            scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 0.0).astype("float32")
            standardize = _Standardize(mean, scale, name="standardize")
            classifier = keras.Sequential(
                [keras.Input((feature_dim,)), standardize, linear], name="linear_classifier"
            )
        else:
            classifier = keras.Sequential(
                [keras.Input((feature_dim,)), linear], name="linear_classifier"
            )

        if augment:
            if train_arrays is not None:
                images, labels = train_arrays
                image_shape, dtype = tuple(images.shape[1:]), str(images.dtype)
                steps_per_epoch = math.ceil(len(images) / batch_size)
                fit_args = dict(x=images, y=labels, batch_size=batch_size, shuffle=True)
            else:
                image_shape, dtype = _image_input(train_data)
                steps_per_epoch = _dataset_steps(train_data)
                if train_features is None:  # not read yet: checked as fit reads it
                    train_data = _checked_train_input(train_data, num_classes)
                fit_args = dict(x=train_data, shuffle=False)  # shuffled by the caller
            if len(image_shape) != 3:
                raise ValueError(
                    "train images must have shape (N, height, width, channels). "
                    f"Received: image shape {image_shape}"
                )
            model = _FrozenEncoderClassifier(
                encoder,
                classifier,
                augmentation=_RandomCropFlip(padding, seed=seed, name="crop_flip"),
                name="linear_probe",
            )
            model.build((None,) + image_shape)
        else:
            steps_per_epoch = math.ceil(len(train_features) / batch_size)
            fit_args = dict(
                x=train_features, y=train_labels.reshape(-1), batch_size=batch_size, shuffle=True
            )
            model = classifier

        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
        )
        with _FrozenTrainability(encoder):
            model.compile(
                optimizer=_make_optimizer(optimizer, schedule, momentum, weight_decay),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            with input_checks.raise_input_errors():
                history = model.fit(epochs=epochs, verbose=verbose, **fit_args)

        if standardize_features:
            classifier = _folded_classifier(standardize, linear, feature_dim)
        # Not classifier.predict: under a JAX distribution it refuses a batch that
        # does not split evenly over the devices.
        logits = predict_in_batches(classifier, test_features, 1024)
    test_labels = np.asarray(test_labels).reshape(-1)
    return {
        "top1": _top_k_accuracy(logits, test_labels, 1),
        "top5": _top_k_accuracy(logits, test_labels, 5),
        "classifier": classifier,
        "train_loss": [float(v) for v in history.history["loss"]],
        "history": history.history,
    }


def _copy_layer(layer, input_shape):
    """A new layer with `layer`'s config and weights (the original is untouched)."""
    if not layer.built:
        layer.build(input_shape)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if not copy.built:
        copy.build(input_shape)
    copy.set_weights(layer.get_weights())
    return copy


@keras.saving.register_keras_serializable(package="keras_simclr")
class _FineTuneModel(keras.Model):
    """images -> [crop/flip] -> encoder -> first head layers -> classifier, all trained.

    Serializable, so a fine-tuned model saves to `.keras` (e.g. as the
    teacher of a `DistillationModel`).
    """

    _SUBLAYERS = ("encoder", "head", "classifier", "augmentation")

    def __init__(self, encoder, head, head_layers, classifier, augmentation, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        self.head_layers = head_layers
        self.classifier = classifier
        self.augmentation = augmentation

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.encoder.built:
            self.encoder.build(input_shape)
        shape = tuple(self.encoder.compute_output_shape(input_shape))
        if self.head_layers:
            if not self.head.built:
                self.head.build(shape)
            shape = (shape[0], self.head.dense_layers[self.head_layers - 1].units)
        if not self.classifier.built:
            self.classifier.build(shape)
        self.built = True

    def call(self, images, training=None):
        x = self.augmentation(to_unit_float(images), training=training)
        x = self.encoder(x, training=training)
        if self.head_layers:
            x = self.head(x, training=training, num_layers=self.head_layers)
        return self.classifier(ops.cast(x, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(serialize_sublayers(self, self._SUBLAYERS))
        config["head_layers"] = self.head_layers
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_sublayers(config, cls._SUBLAYERS))


def _predict_logits(model, data, batch_size, num_classes):
    from keras_simclr.evaluation.knn import iterate_batches

    logits, labels = [], []
    for images, batch_labels in iterate_batches(data, batch_size):
        if batch_labels is None:
            raise ValueError(
                "test_data must carry labels: (images, labels) arrays or a "
                "dataset of (images, labels) batches. Received: images only"
            )
        check_image_range(images, "test_data images")
        logits.append(np.asarray(predict_batch(model, images), "float32"))
        labels.append(np.asarray(batch_labels).reshape(-1))
    labels = np.concatenate(labels)
    input_checks.check_labels(labels, num_classes, "test_data labels")
    return np.concatenate(logits), labels


def fine_tune(
    model,
    train_data,
    test_data,
    num_classes,
    ft_proj_selector=0,
    epochs=30,
    batch_size=256,
    learning_rate=0.01,
    optimizer="sgd",
    momentum=0.9,
    weight_decay=0.0,
    padding=4,
    seed=None,
    verbose=0,
):
    """Fine-tunes a copy of the encoder (and the first head layers) with a classifier.

    SimCLR v2 fine-tunes from a middle layer of the projection head:
    `ft_proj_selector=0` puts the classifier on the encoder output h,
    `ft_proj_selector=k` on the output of the first `k` projection-head
    layers (Dense + BatchNorm + ReLU each). The encoder and the head are
    copied (the given model is not changed); everything in the copy is
    trained, BatchNorm in training mode, on images with a random crop with
    padding and a horizontal flip, with a cosine learning-rate decay.

    Distributed models: the copy is made where `fine_tune` is called (in a
    `tf.distribute` scope it trains on every replica; outside, on one
    device), and its test logits are one row per image either way. Under a
    JAX distribution it trains without it when a training batch would not
    split evenly over the devices, as in `linear_evaluation`.

    Args:
        model: a model with `.encoder` and `.projection_head` (a
            `ProjectionHead`), e.g. `ContrastiveModel`; with
            `ft_proj_selector=0` an encoder `keras.Model` alone also works.
        train_data: `(images, labels)` arrays (shuffled every epoch) or a
            finite `tf.data.Dataset` of `(images, labels)` batches.
        test_data: the test set, in the same forms.
        num_classes: number of classes.
        ft_proj_selector: number of projection-head layers kept, from 0 to
            `projection_head.num_layers - 1`.
        epochs, batch_size, learning_rate, optimizer, momentum,
        weight_decay, padding, seed, verbose: as in `linear_evaluation`.

    Raises:
        ValueError: an argument out of range; float images outside [0, 1]
            (integer ones outside [0, 255]) or labels outside
            `[0, num_classes)`, naming what was received (arrays are checked
            before training, datasets as they are read).

    Returns:
        dict with `"top1"`, `"top5"` (test accuracy), `"model"` (the
        fine-tuned `keras.Model`, images to logits; its classifier is the
        layer named `"classifier"`), `"train_loss"` (per epoch) and
        `"history"`.

    Example:

    ```python
    result = fine_tune(model, (x_10pct, y_10pct), (x_test, y_test), 10,
                       ft_proj_selector=1, epochs=60)
    ```

    References:
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020, section 2 (fine-tuning from
          the middle layer of the projection head).
    """
    encoder = resolve_encoder(model, caller="fine_tune")
    head = getattr(model, "projection_head", None)
    max_selector = int(getattr(head, "num_layers", 1)) - 1 if head is not None else 0
    if int(ft_proj_selector) != ft_proj_selector or not 0 <= ft_proj_selector <= max_selector:
        raise ValueError(
            f"ft_proj_selector must be an integer between 0 and {max_selector} "
            "(the projection head's layers but the last). "
            f"Received: ft_proj_selector={ft_proj_selector}"
        )
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    epochs, batch_size = int(epochs), int(batch_size)
    train_arrays = _as_labelled_arrays(train_data, "train_data")
    _as_labelled_arrays(test_data, "test_data")
    check_labelled_arrays(train_data, num_classes, "train_data")
    check_labelled_arrays(test_data, num_classes, "test_data")
    if train_arrays is not None:
        images, labels = train_arrays
        image_shape = tuple(images.shape[1:])
        steps_per_epoch = math.ceil(len(images) / batch_size)
        fit_args = dict(x=images, y=labels, batch_size=batch_size, shuffle=True)
    else:
        image_shape, _ = _image_input(train_data)
        steps_per_epoch = _dataset_steps(train_data)
        fit_args = dict(  # shuffled by the caller
            x=_checked_train_input(train_data, num_classes), shuffle=False
        )

    if train_arrays is not None:
        even = batches_split_evenly(batch_size, num_examples=len(train_arrays[0]))
    else:
        even = batches_split_evenly(batch_size, dataset=train_data)
    # As in linear_evaluation: without a JAX distribution that would refuse a batch.
    with distribution_for_fit(even):
        encoder_copy = _copy_layer(encoder, (None,) + image_shape)
        feature_shape = tuple(encoder_copy.compute_output_shape((None,) + image_shape))
        head_copy = _copy_layer(head, feature_shape) if ft_proj_selector else None
        tuned = _FineTuneModel(
            encoder_copy,
            head_copy,
            int(ft_proj_selector),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                name="classifier",
            ),
            _RandomCropFlip(padding, seed=seed, name="crop_flip"),
            name="fine_tuned",
        )
        tuned.build((None,) + image_shape)
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
        )
        tuned.compile(
            optimizer=_make_optimizer(optimizer, schedule, momentum, weight_decay),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        with input_checks.raise_input_errors():
            history = tuned.fit(epochs=epochs, verbose=verbose, **fit_args)
        logits, test_labels = _predict_logits(tuned, test_data, batch_size, num_classes)
    return {
        "top1": _top_k_accuracy(logits, test_labels, 1),
        "top5": _top_k_accuracy(logits, test_labels, 5),
        "model": tuned,
        "train_loss": [float(v) for v in history.history["loss"]],
        "history": history.history,
    }
