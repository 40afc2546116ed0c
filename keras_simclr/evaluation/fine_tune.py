"""Fine-tuning: the encoder (and the first projection-head layers) trained with a classifier.

Written in `keras.ops` (no TensorFlow import): it runs on every backend.
"""

import keras
import numpy as np

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.evaluation.classifier_training import classification_result
from keras_simclr.evaluation.classifier_training import fit_classifier
from keras_simclr.evaluation.features import iterate_batches
from keras_simclr.evaluation.fine_tune_model import FineTuneModel
from keras_simclr.evaluation.forward import batches_split_evenly
from keras_simclr.evaluation.forward import distribution_for_fit
from keras_simclr.evaluation.forward import predict_batch
from keras_simclr.evaluation.labelled_data import check_train_and_test_data
from keras_simclr.evaluation.labelled_data import image_fit_input
from keras_simclr.evaluation.random_crop_flip import RandomCropFlip
from keras_simclr.models import input_checks
from keras_simclr.models.resolve_encoder import resolve_encoder


def _copy_layer(layer, input_shape):
    """A new layer with `layer`'s config and weights (the original is untouched)."""
    if not layer.built:
        layer.build(input_shape)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if not copy.built:
        copy.build(input_shape)
    copy.set_weights(layer.get_weights())
    return copy


def _predict_logits(model, data, batch_size, num_classes):
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
    train_arrays = check_train_and_test_data(train_data, test_data, num_classes)
    fit_input = image_fit_input(train_data, train_arrays, batch_size, num_classes)
    image_shape = fit_input.image_shape

    if train_arrays is not None:
        even = batches_split_evenly(batch_size, num_examples=len(train_arrays[0]))
    else:
        even = batches_split_evenly(batch_size, dataset=train_data)
    # As in linear_evaluation: without a JAX distribution that would refuse a batch.
    with distribution_for_fit(even):
        encoder_copy = _copy_layer(encoder, (None,) + image_shape)
        feature_shape = tuple(encoder_copy.compute_output_shape((None,) + image_shape))
        head_copy = _copy_layer(head, feature_shape) if ft_proj_selector else None
        tuned = FineTuneModel(
            encoder_copy,
            head_copy,
            int(ft_proj_selector),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                name="classifier",
            ),
            RandomCropFlip(padding, seed=seed, name="crop_flip"),
            name="fine_tuned",
        )
        tuned.build((None,) + image_shape)
        history = fit_classifier(
            tuned,
            fit_input.fit_args,
            epochs,
            fit_input.steps_per_epoch,
            learning_rate,
            optimizer,
            momentum,
            weight_decay,
            verbose,
        )
        logits, test_labels = _predict_logits(tuned, test_data, batch_size, num_classes)
    return classification_result(logits, test_labels, history, model=tuned)
