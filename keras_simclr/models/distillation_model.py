"""SimCLR v2 distillation: a student classifier trained on a frozen teacher's soft labels."""

import math

import keras
from keras import ops

from keras_simclr.augment.image_utils import to_unit_float
from keras_simclr.losses.distillation import distillation_loss
from keras_simclr.models import input_checks
from keras_simclr.models import teacher_student
from keras_simclr.models.base_model import BaseModel
from keras_simclr.utils.validation import float_or_nan
from keras_simclr.utils.validation import validate_temperature


def _validate_alpha(alpha):
    value = float_or_nan(alpha)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(
            "`alpha` (the weight of the labelled cross-entropy) must be a "
            f"number in [0, 1]. Received: alpha={alpha!r}"
        )
    return value


def _teacher_agreement(teacher_logits, student_logits):
    agree = ops.equal(ops.argmax(student_logits, axis=-1), ops.argmax(teacher_logits, axis=-1))
    return ops.mean(ops.cast(agree, "float32"))


@keras.saving.register_keras_serializable(package="keras_simclr")
class DistillationModel(BaseModel):
    """SimCLR v2 distillation: a student learns a frozen teacher's soft labels.

    The teacher is a classifier (images to logits), typically the encoder
    fine-tuned on the labelled fraction (`keras_simclr.evaluation.fine_tune`);
    the student is a trainable classifier of the same or a smaller
    architecture. `fit(x)` takes unlabelled images (uint8, or floats in
    [0, 1]; `fit` refuses floats above 1 rather than clip them): the optional
    `augmenter` draws one random view of each image, the teacher labels that
    view with `softmax(teacher_logits / temperature)` (BatchNorm in
    inference mode, no gradient), and the student learns those soft labels
    on the same view with `keras_simclr.losses.distillation_loss` (no
    `T**2` factor).

    Labels are optional. When the batches carry labels `y`, the loss is
    `(1 - alpha) * distill + alpha * CE`, where `CE` is the softmax
    cross-entropy (temperature 1) of the student on the labelled examples:
    a label `>= 0` is a class, a label `< 0` (e.g. `-1`) marks an unlabelled
    example in a mixed batch; `CE` is the mean over the batch's labelled
    examples (0 when it has none). When the data carries no `y`, the loss is
    `distill` alone, whatever `alpha`. The distillation term always covers
    every example of the batch. (The paper writes the same combination with
    its `alpha` on the distillation term: its `alpha` is `1 - alpha` here.)

    Training runs Keras's own `train_step` (tested on TensorFlow and JAX);
    this class supplies the forward pass (`call`) and the loss
    (`compute_loss`), which also updates the metrics (as in the whole model
    family; here it must, since in `evaluate` the teacher's logits are
    computed there). The teacher is set to
    `trainable = False` here (the given object is changed): its weights,
    BatchNorm statistics included, do not change during `fit`.

    `call(x)` (and so `predict`) returns the student's logits on the
    un-augmented images; only `call(x, training=True)`, as `fit` calls it,
    returns `{"logits": student logits, "teacher_logits": ...}` on the
    augmented view. `evaluate(x, y)` scores the student on un-augmented
    images against the teacher (and the labels). `compile` takes an
    optimizer; a compiled `loss` or `metrics` is not used.

    Logged metrics: `loss`, `teacher_agreement` (fraction of examples on
    which the student's and the teacher's top classes agree) and, when the
    data carries labels, `accuracy` (the student's, on the labelled
    examples).

    Under a `tf.distribute` strategy each replica's loss is divided by the
    replica count, as Keras's own losses are; the labelled cross-entropy is
    then the mean of the replicas' means.

    Args:
        teacher: a `keras.Model` mapping float32 images in [0, 1],
            `(batch, H, W, 3)`, to logits `(batch, num_classes)`; frozen.
        student: a trainable `keras.Model` of the same signature and the
            same number of classes; `predict` gives its logits.
        temperature: softmax temperature of the teacher's soft labels and of
            the student's distribution, > 0 (SimCLR v2: 1.0).
        alpha: weight in [0, 1] of the labelled cross-entropy (0: pure
            distillation, the labels only feed the `accuracy` metric).
        augmenter: a layer that draws one random view of each image (e.g.
            `keras_simclr.augment.RandomResizedCrop(32, 32, scale=(0.25, 1),
            horizontal_flip=True)`), applied to float32 images in [0, 1];
            `None`: teacher and student see the images as given.
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    teacher = keras_simclr.evaluation.fine_tune(
        model, (x_10pct, y_10pct), (x_test, y_test), 10, ft_proj_selector=1
    )["model"]
    distiller = keras_simclr.models.DistillationModel(
        teacher=teacher,
        student=student,  # images -> 10 logits
        temperature=1.0,
        augmenter=keras_simclr.augment.RandomResizedCrop(
            32, 32, scale=(0.25, 1.0), horizontal_flip=True),
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    distiller.fit(x_train_unlabelled, batch_size=256, epochs=100)
    distiller.evaluate(x_test, y_test)  # loss, teacher_agreement, accuracy
    ```

    References:
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020, section 2, eq. 3 and the
          weighted combination with labelled examples that follows it.
        - Hinton et al., Distilling the Knowledge in a Neural Network, 2015.
    """

    _SUBLAYERS = ("teacher", "student", "augmenter")

    def __init__(
        self,
        teacher,
        student,
        temperature=1.0,
        alpha=0.0,
        augmenter=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.temperature = validate_temperature(temperature)
        self.alpha = _validate_alpha(alpha)
        teacher_student.check_layer(teacher, "teacher")
        teacher_student.check_layer(student, "student")
        if augmenter is not None:
            teacher_student.check_layer(augmenter, "augmenter")
        if teacher is student:
            raise ValueError(
                "`teacher` and `student` must be two models: the teacher is "
                "frozen and the student trained. Received: the same object "
                f"{teacher.name!r} as both"
            )
        self.teacher = teacher
        self.student = student
        self.augmenter = augmenter
        if teacher.built and student.built:
            teacher_student.check_pair(teacher, student, None)
        # Frozen only once the pair is known to be valid.
        teacher.trainable = False
        self.teacher_agreement_tracker = keras.metrics.Mean(name="teacher_agreement")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    # -- checks -------------------------------------------------------------

    @staticmethod
    def _check_images(shape):
        shape = tuple(shape)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                "DistillationModel expects x to be a batch of RGB images of "
                "shape (batch, height, width, 3), uint8 or float in [0, 1]. "
                f"Received: x.shape={shape}"
            )

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
    ):
        """`keras.Model.fit`, after checking the images where they enter.

        The compiled step cannot check values, so the images of `x` and
        `validation_data` are checked here: arrays directly, a
        `tf.data.Dataset` of float images by an assertion mapped over its
        batches in tf.data (uint8 datasets are not touched). Other inputs go
        to Keras unchecked.

        Args: as `keras.Model.fit`.

        Returns:
            the `History` of `keras.Model.fit`.

        Raises:
            ValueError: float images outside [0, 1] (or integer ones
                outside [0, 255]).
        """
        x = input_checks.checked_images(x, "x")
        if validation_data is not None:
            validation_data = input_checks.checked_images(validation_data, "validation x")
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

    # -- forward ------------------------------------------------------------

    def build(self, input_shape):
        if isinstance(input_shape, dict) or (
            isinstance(input_shape, (list, tuple))
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(
                "DistillationModel takes a single batch of images as x (put "
                f"labels in y). Received: x with shapes {input_shape}"
            )
        shape = tuple(input_shape)
        self._check_images(shape)
        # Unbuilt parts are built by a symbolic call, so that layers without
        # a `build()` method (subclassed models) get built by tracing.
        images = keras.KerasTensor(shape, "float32")
        view_shape = shape
        if self.augmenter is not None:
            view_shape = tuple(self.augmenter(images, training=True).shape)
        view = keras.KerasTensor(view_shape, "float32")
        for model in (self.teacher, self.student):
            if not model.built:
                model(view, training=False)
        teacher_student.check_pair(self.teacher, self.student, view_shape)
        self.built = True

    def forward(self, inputs, training=None):
        """The student's logits; with `training=True` also the teacher's.

        Returns:
            with `training=True`: a dict with `"logits"` (the student's,
            `(batch, num_classes)`) and `"teacher_logits"` (constants), both
            on the augmented view; otherwise the student's logits on the
            un-augmented images.
        """
        if isinstance(inputs, (list, tuple, dict)):
            raise ValueError(
                "DistillationModel takes a single batch of images as x (put "
                "labels in y). Received: x as a "
                f"{type(inputs).__name__} of {len(inputs)}: "
                f"{[tuple(getattr(v, 'shape', ())) for v in inputs]}"
            )
        self._check_images(inputs.shape)
        images = to_unit_float(inputs)
        if not training:
            return self.student(images, training=False)
        view = images
        if self.augmenter is not None:
            view = self.augmenter(images, training=True)
        student_logits = self.student(view, training=True)
        teacher_logits = ops.stop_gradient(self.teacher(view, training=False))
        return {"logits": student_logits, "teacher_logits": teacher_logits}

    # -- loss and metrics ---------------------------------------------------

    def objective(self, x, y, y_pred, sample_weight=None, training=True):
        """The distillation loss, mixed with the labelled cross-entropy when
        `y` is given; updates `teacher_agreement` and `accuracy`."""
        if sample_weight is not None:
            raise ValueError(
                "DistillationModel does not take `sample_weight`; mark "
                "unlabelled examples with label -1 instead. Received: "
                f"sample_weight of shape {getattr(sample_weight, 'shape', None)}"
            )
        if isinstance(y_pred, dict):
            student_logits = y_pred["logits"]
            teacher_logits = y_pred["teacher_logits"]
        else:
            # evaluate(): call() gave the student's logits on the images as
            # they are; the teacher labels the same images.
            student_logits = y_pred
            teacher_logits = self.teacher(to_unit_float(x), training=False)
        student_logits = ops.cast(student_logits, "float32")
        teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
        loss = distillation_loss(teacher_logits, student_logits, temperature=self.temperature)
        labels = mask = None
        if y is not None:
            labels = ops.reshape(ops.cast(y, "int32"), (-1,))
            mask = ops.cast(ops.greater_equal(labels, 0), "float32")
            labels = ops.maximum(labels, 0)
            if self.alpha > 0:
                per_example = keras.losses.sparse_categorical_crossentropy(
                    labels, student_logits, from_logits=True
                )
                supervised = ops.sum(per_example * mask) / ops.maximum(ops.sum(mask), 1.0)
                loss = (1.0 - self.alpha) * loss + self.alpha * supervised
        # The metrics are updated here, where the teacher's logits exist in
        # both fit and evaluate (compute_metrics must not run the teacher:
        # on JAX it runs outside the model's variable state).
        self.teacher_agreement_tracker.update_state(
            _teacher_agreement(teacher_logits, student_logits)
        )
        if labels is not None:
            self.accuracy_tracker.update_state(labels, student_logits, sample_weight=mask)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Updated in compute_loss; `accuracy` is only logged with labels.
        results = self.get_metrics_result()
        if y is None:
            results.pop(self.accuracy_tracker.name, None)
        return results

    # -- serialization ------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "alpha": self.alpha})
        return config
