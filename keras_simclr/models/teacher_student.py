"""Checks of a distillation teacher and student (not public API)."""

import keras


def check_layer(model, what):
    """Raises unless `model` is a Keras layer (a model is one)."""
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            f"`{what}` must be a Keras model (or layer) mapping images to "
            f"logits. Received: {what} of type {type(model).__name__}"
        )


def output_shape(model, image_shape):
    """The static output shape of `model` on `image_shape` images, or None."""
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1 and getattr(model, "inputs", None):
        return tuple(outputs[0].shape)
    if image_shape is None:
        return None
    try:
        spec = model.compute_output_spec(keras.KerasTensor(tuple(image_shape), "float32"))
    except Exception:  # the real call will raise its own, clearer error
        return None
    shape = getattr(spec, "shape", None)
    return None if shape is None else tuple(shape)


def check_pair(teacher, student, view_shape):
    """Raises unless `teacher` and `student` share no weights and map
    `view_shape` images to logits of the same number of classes (where
    their output shapes are known)."""
    teacher_weights = {id(v) for v in teacher.weights}
    shared = [v.path for v in student.weights if id(v) in teacher_weights]
    if shared:
        raise ValueError(
            "`teacher` and `student` must not share weights (the teacher "
            "is frozen, so shared weights would not train). Received: "
            f"shared weights {shared[:3]}"
        )
    teacher_shape = output_shape(teacher, view_shape)
    student_shape = output_shape(student, view_shape)
    for what, shape in (("teacher", teacher_shape), ("student", student_shape)):
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"The {what} must map images to logits of shape "
                f"(batch, num_classes). Received: {what} output shape {shape}"
            )
    if (
        teacher_shape is not None
        and student_shape is not None
        and None not in (teacher_shape[-1], student_shape[-1])
        and teacher_shape[-1] != student_shape[-1]
    ):
        raise ValueError(
            "The teacher and the student must predict the same number of "
            f"classes. Received: teacher logits of shape {teacher_shape} "
            f"(num_classes={teacher_shape[-1]}), student logits of shape "
            f"{student_shape} (num_classes={student_shape[-1]})"
        )
