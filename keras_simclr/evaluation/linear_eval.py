"""Linear evaluation: a linear classifier trained on frozen encoder features.

Written in `keras.ops` (no TensorFlow import): it runs on every backend.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_simclr.evaluation.classifier_training import classification_result
from keras_simclr.evaluation.classifier_training import fit_classifier
from keras_simclr.evaluation.forward import batches_split_evenly
from keras_simclr.evaluation.forward import distribution_for_fit
from keras_simclr.evaluation.forward import predict_in_batches
from keras_simclr.evaluation.frozen_encoder_classifier import FrozenEncoderClassifier
from keras_simclr.evaluation.frozen_variables import frozen_variables
from keras_simclr.evaluation.labelled_data import check_train_and_test_data
from keras_simclr.evaluation.labelled_data import image_fit_input
from keras_simclr.evaluation.labelled_data import labelled_features
from keras_simclr.evaluation.random_crop_flip import RandomCropFlip
from keras_simclr.evaluation.standardize import Standardize
from keras_simclr.models.resolve_encoder import resolve_encoder


def _folded_classifier(standardize, linear, feature_dim):
    """One Dense layer on raw h equal to `linear(standardize(h))`.

    `W ((h - m) * s) + b = (s W) h + (b - (m s) W)`.
    """
    mean = ops.convert_to_numpy(standardize.mean).astype("float64")
    scale = ops.convert_to_numpy(standardize.scale).astype("float64")
    kernel = ops.convert_to_numpy(linear.kernel).astype("float64")
    bias = ops.convert_to_numpy(linear.bias).astype("float64")
    folded = keras.layers.Dense(linear.units, name="linear")
    classifier = keras.Sequential([keras.Input((feature_dim,)), folded], name="linear_classifier")
    folded.set_weights(
        [
            (scale[:, None] * kernel).astype("float32"),
            (bias - (mean * scale) @ kernel).astype("float32"),
        ]
    )
    return classifier


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
    train_arrays = check_train_and_test_data(train_data, test_data, num_classes)

    test_features, test_labels = labelled_features(
        encoder, test_data, batch_size, num_classes, "test_data"
    )
    feature_dim = test_features.shape[1]
    train_features = train_labels = None
    if standardize_features or not augment:
        train_features, train_labels = labelled_features(
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
            standardize = Standardize(mean, scale, name="standardize")
            classifier = keras.Sequential(
                [keras.Input((feature_dim,)), standardize, linear], name="linear_classifier"
            )
        else:
            classifier = keras.Sequential(
                [keras.Input((feature_dim,)), linear], name="linear_classifier"
            )

        if augment:
            # A dataset not read yet is checked as fit reads it.
            image_shape, steps_per_epoch, fit_args = image_fit_input(
                train_data,
                train_arrays,
                batch_size,
                num_classes,
                check_values=train_features is None,
            )
            if len(image_shape) != 3:
                raise ValueError(
                    "train images must have shape (N, height, width, channels). "
                    f"Received: image shape {image_shape}"
                )
            model = FrozenEncoderClassifier(
                encoder,
                classifier,
                augmentation=RandomCropFlip(padding, seed=seed, name="crop_flip"),
                name="linear_probe",
            )
            model.build((None,) + image_shape)
        else:
            steps_per_epoch = math.ceil(len(train_features) / batch_size)
            fit_args = dict(
                x=train_features, y=train_labels.reshape(-1), batch_size=batch_size, shuffle=True
            )
            model = classifier

        with frozen_variables(encoder):
            history = fit_classifier(
                model,
                fit_args,
                epochs,
                steps_per_epoch,
                learning_rate,
                optimizer,
                momentum,
                weight_decay,
                verbose,
            )

        if standardize_features:
            classifier = _folded_classifier(standardize, linear, feature_dim)
        # Not classifier.predict: under a JAX distribution it refuses a batch that
        # does not split evenly over the devices.
        logits = predict_in_batches(classifier, test_features, 1024)
    test_labels = np.asarray(test_labels).reshape(-1)
    return classification_result(logits, test_labels, history, classifier=classifier)
