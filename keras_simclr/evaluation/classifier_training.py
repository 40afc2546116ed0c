"""Training and scoring of the supervised evaluations' classifiers.

`linear_evaluation` and `fine_tune` train their classifier the same way:
softmax cross-entropy, a cosine learning-rate decay over all steps, SGD
with Nesterov momentum or LARS, and report top-1 / top-5 test accuracy.
"""

import keras
import numpy as np

from keras_simclr.models import input_checks


def make_optimizer(optimizer, learning_rate, momentum, weight_decay):
    """The evaluations' optimizer: `"sgd"`, `"lars"` or an instance as it is.

    Args:
        optimizer: `"sgd"` (Nesterov momentum, decoupled weight decay),
            `"lars"` (`keras_simclr.optimizers.LARS`, weight decay in its
            update rule), or a `keras.optimizers.Optimizer`, returned
            unchanged (then the other arguments are not used).
        learning_rate: a float or a schedule.
        momentum: the momentum.
        weight_decay: the weight decay; 0 means none.

    Raises:
        ValueError: another `optimizer`, naming it.

    Example:

    ```python
    optimizer = make_optimizer("sgd", 0.1, momentum=0.9, weight_decay=0.0)
    ```
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate,
            momentum=momentum,
            nesterov=True,
            weight_decay=weight_decay or None,
        )
    if optimizer == "lars":
        # Imported here so this module does not depend on it at import time.
        from keras_simclr.optimizers import LARS

        return LARS(learning_rate, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(
        "optimizer must be 'sgd', 'lars' or a keras.optimizers.Optimizer. "
        f"Received: optimizer={optimizer!r}"
    )


def fit_classifier(
    model,
    fit_args,
    epochs,
    steps_per_epoch,
    learning_rate,
    optimizer,
    momentum,
    weight_decay,
    verbose,
):
    """Compiles `model` for integer labels and fits it with a cosine decay.

    The learning rate decays from `learning_rate` to 0 over
    `epochs * steps_per_epoch` steps (`keras.optimizers.schedules.CosineDecay`);
    the loss is `SparseCategoricalCrossentropy(from_logits=True)`, the
    metric accuracy. A failed `tf.data` input check raises its `ValueError`.

    Args:
        model: a `keras.Model` mapping inputs to logits.
        fit_args: the data arguments of `fit` (see `labelled_data.FitInput`).
        epochs: training epochs.
        steps_per_epoch: batches per epoch.
        learning_rate, optimizer, momentum, weight_decay: as in
            `make_optimizer`, `learning_rate` being the peak of the decay.
        verbose: verbosity of `fit`.

    Returns:
        the `keras.callbacks.History` of `fit`.

    Example:

    ```python
    history = fit_classifier(model, dict(x=x, y=y, batch_size=256, shuffle=True),
                             epochs=90, steps_per_epoch=196, learning_rate=0.1,
                             optimizer="sgd", momentum=0.9, weight_decay=0.0, verbose=0)
    ```
    """
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(1, epochs * steps_per_epoch)
    )
    model.compile(
        optimizer=make_optimizer(optimizer, schedule, momentum, weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    with input_checks.raise_input_errors():
        return model.fit(epochs=epochs, verbose=verbose, **fit_args)


def top_k_accuracy(logits, labels, k):
    """The fraction of rows whose label is among the `k` highest logits.

    Ties are broken by the lower class index (a stable sort); `k` is capped
    at the number of classes.

    Example:

    ```python
    top_k_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), 1)  # 0.5
    ```
    """
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def classification_result(logits, labels, history, **models):
    """The evaluations' result dict.

    Args:
        logits: test logits, NumPy `(N, num_classes)`.
        labels: test labels `(N,)`.
        history: the `History` of `fit`.
        **models: the trained model(s) to return, by key (e.g.
            `classifier=...`).

    Returns:
        `{"top1", "top5", **models, "train_loss", "history"}`: top-1 and
        top-5 accuracy (Python floats), the models, the training loss per
        epoch and the `fit` history dict.
    """
    return {
        "top1": top_k_accuracy(logits, labels, 1),
        "top5": top_k_accuracy(logits, labels, 5),
        **models,
        "train_loss": [float(v) for v in history.history["loss"]],
        "history": history.history,
    }
