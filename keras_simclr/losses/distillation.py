"""SimCLR v2 distillation loss: a function and a thin `Loss` class."""

import keras
from keras import ops

from keras_simclr.utils.tensors import compatible_shapes
from keras_simclr.utils.tensors import static_shape
from keras_simclr.utils.validation import validate_temperature


def _check_logits(teacher_logits, student_logits):
    teacher_shape = static_shape(teacher_logits)
    student_shape = static_shape(student_logits)
    if len(teacher_shape) != 2 or not compatible_shapes(teacher_shape, student_shape):
        raise ValueError(
            "`teacher_logits` and `student_logits` must be (batch, num_classes) "
            "tensors of the same shape. Received: "
            f"teacher_logits.shape={teacher_shape}, "
            f"student_logits.shape={student_shape}"
        )


def distillation_cross_entropy(teacher_logits, student_logits, temperature=1.0):
    """Per-example distillation cross-entropy, shape `(batch,)`.

    Row i is `-sum_y P_T(y | x_i; T) log P_S(y | x_i; T)`; see
    `distillation_loss`, which is its mean over the batch.

    Args:
        teacher_logits: `(batch, num_classes)` teacher logits (no gradient
            flows into them).
        student_logits: `(batch, num_classes)` student logits.
        temperature: softmax temperature, a positive float.

    Returns:
        A float32 `(batch,)` tensor.

    Example:

    ```python
    per_example = distillation_cross_entropy(teacher(x), student(x), 2.0)
    ```
    """
    temperature = validate_temperature(temperature)
    _check_logits(teacher_logits, student_logits)
    inv_t = 1.0 / temperature
    teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
    student_logits = ops.cast(student_logits, "float32")
    soft_labels = ops.softmax(teacher_logits * inv_t, axis=-1)
    log_student = ops.log_softmax(student_logits * inv_t, axis=-1)
    return -ops.sum(soft_labels * log_student, axis=-1)


def distillation_loss(teacher_logits, student_logits, temperature=1.0):
    """SimCLR v2's distillation loss: cross-entropy from the teacher's soft labels.

    With `P(y | x; T) = softmax(logits / T)[y]`, returns the mean over the
    batch of `-sum_y P_T(y | x_i; T) log P_S(y | x_i; T)`: the teacher's
    distribution at temperature `T` is the (constant, `stop_gradient`)
    target of the student's distribution at the same temperature.

    This is eq. 3 of the SimCLR v2 paper (there a sum over the unlabelled
    examples; here their mean). It is *not* multiplied by `T**2` (as
    Hinton et al. suggest to keep gradient magnitudes comparable across
    temperatures): the paper writes no such factor, and the public
    google-research/simclr code has no distillation loss to say otherwise.
    The gradient with respect to the student logits is therefore
    `(softmax(s / T) - softmax(t / T)) / (T * batch)`; multiply the loss
    by `T**2` yourself for Hinton's scaling. Computed in float32 whatever
    the input dtype. The value is the KL divergence `KL(P_T || P_S)` plus
    the teacher's entropy, a constant for the student: it is minimal, not
    zero, when the student matches the teacher.

    Args:
        teacher_logits: `(batch, num_classes)` teacher logits (treated as
            constants: no gradient flows into them).
        student_logits: `(batch, num_classes)` student logits.
        temperature: softmax temperature of both distributions, a positive
            float (SimCLR v2: 1.0).

    Returns:
        A float32 scalar.

    Example:

    ```python
    loss = distillation_loss(teacher(images, training=False),
                             student(images, training=True), temperature=1.0)
    ```

    References:
        - [Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020](https://arxiv.org/abs/2006.10029),
          section 2, eq. 3.
        - [Hinton et al., Distilling the Knowledge in a Neural Network,
          2015](https://arxiv.org/abs/1503.02531).
    """
    return ops.mean(distillation_cross_entropy(teacher_logits, student_logits, temperature))


@keras.saving.register_keras_serializable(package="keras_simclr")
class DistillationLoss(keras.losses.Loss):
    """The SimCLR v2 distillation loss as a `keras.losses.Loss`.

    Called as `DistillationLoss(T)(teacher_logits, student_logits)`: the
    `y_true` slot carries the teacher's logits (soft labels are their
    softmax at temperature `T`) and `y_pred` the student's. Each example's
    loss is the cross-entropy of `distillation_loss`; the base class reduces
    them (default: mean over the batch, where it equals
    `distillation_loss`), so `sample_weight` and `reduction` work as for any
    Keras loss. No `T**2` factor (see `distillation_loss`).

    Args:
        temperature: softmax temperature, a positive float.
        **kwargs: forwarded to `keras.losses.Loss` (`name`, `reduction`,
            `dtype`).

    Example:

    ```python
    loss_fn = DistillationLoss(temperature=2.0)
    loss = loss_fn(teacher(images, training=False), student(images))
    ```

    References:
        - [Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020](https://arxiv.org/abs/2006.10029),
          eq. 3.
    """

    def __init__(self, temperature=1.0, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = validate_temperature(temperature)

    def call(self, y_true, y_pred):
        return distillation_cross_entropy(y_true, y_pred, temperature=self.temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
