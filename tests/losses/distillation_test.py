"""The SimCLR v2 distillation loss against a plain NumPy oracle, a
hand-checked case, and its gradient."""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.losses.distillation import DistillationLoss
from keras_simclr.losses.distillation import distillation_cross_entropy
from keras_simclr.losses.distillation import distillation_loss


def numpy_distillation(teacher_logits, student_logits, temperature):
    """SimCLR v2 eq. 3 averaged over the batch, one example at a time, float64."""
    total = 0.0
    for t, s in zip(np.asarray(teacher_logits, "float64"), np.asarray(student_logits, "float64")):
        t, s = t / temperature, s / temperature
        p_teacher = np.exp(t - t.max()) / np.exp(t - t.max()).sum()
        log_z = s.max() + math.log(np.exp(s - s.max()).sum())
        total += -sum(p * (s_y - log_z) for p, s_y in zip(p_teacher, s))
    return total / len(teacher_logits)


def numpy_softmax(logits):
    logits = np.asarray(logits, "float64")
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _logits(n, c, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    teacher = (scale * rng.normal(size=(n, c))).astype("float32")
    student = (scale * rng.normal(size=(n, c))).astype("float32")
    return teacher, student


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("n, c", [(1, 2), (4, 3), (16, 10), (7, 100)])
def test_matches_numpy_oracle(n, c, temperature):
    teacher, student = _logits(n, c, seed=n * 1000 + c)
    got = float(_np(distillation_loss(teacher, student, temperature=temperature)))
    expected = numpy_distillation(teacher, student, temperature)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    per_example = _np(distillation_cross_entropy(teacher, student, temperature))
    assert per_example.shape == (n,)
    np.testing.assert_allclose(per_example.mean(), expected, rtol=1e-5, atol=1e-6)


def test_hand_checked_tiny_case():
    # A uniform teacher [0, 0] and a student [ln 3, 0] (P_S = [3/4, 1/4]):
    #   loss = -(1/2 ln 3/4 + 1/2 ln 1/4) = 1/2 ln(16/3).
    got = _np(distillation_loss([[0.0, 0.0]], [[math.log(3.0), 0.0]]))
    np.testing.assert_allclose(got, 0.5 * math.log(16.0 / 3.0), rtol=1e-6)
    # At T = 2, logits [2 ln 3, 0] give softmax([ln 3, 0]) = [3/4, 1/4]. A
    # student equal to the teacher scores the teacher's entropy (not 0):
    #   loss = -(3/4 ln 3/4 + 1/4 ln 1/4).
    logits = [[2.0 * math.log(3.0), 0.0]]
    got = _np(distillation_loss(logits, logits, temperature=2.0))
    np.testing.assert_allclose(got, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), rtol=1e-6)
    # A batch is the mean of its rows. Row 2, teacher = student = [2 ln 3, 0]
    # at T = 1: P_T = P_S = [9/10, 1/10], so it scores their entropy.
    got = _np(
        distillation_loss(
            [[0.0, 0.0], [2.0 * math.log(3.0), 0.0]],
            [[math.log(3.0), 0.0], [2.0 * math.log(3.0), 0.0]],
        )
    )
    row_2 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(got, (0.5 * math.log(16.0 / 3.0) + row_2) / 2, rtol=1e-6)


def test_shift_invariant_and_minimal_at_the_teacher():
    teacher, student = _logits(6, 5, seed=3)
    base = float(_np(distillation_loss(teacher, student, 1.5)))
    shifted = float(_np(distillation_loss(teacher + 7.0, student - 3.0, 1.5)))
    np.testing.assert_allclose(shifted, base, rtol=1e-5)
    at_teacher = float(_np(distillation_loss(teacher, teacher, 1.5)))
    p = numpy_softmax(teacher / 1.5)
    entropy = float(np.mean(-(p * np.log(p)).sum(axis=1)))
    np.testing.assert_allclose(at_teacher, entropy, rtol=1e-5)
    assert at_teacher < base


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_gradient_is_softmax_difference_over_t_times_batch(temperature):
    teacher, student = _logits(5, 4, seed=11)
    t = tf.Variable(teacher)
    s = tf.Variable(student)
    with tf.GradientTape() as tape:
        loss = distillation_loss(t, s, temperature=temperature)
    grad_s, grad_t = tape.gradient(loss, [s, t])
    expected = (numpy_softmax(student / temperature) - numpy_softmax(teacher / temperature)) / (
        temperature * len(student)
    )
    np.testing.assert_allclose(grad_s.numpy(), expected, atol=1e-6)
    # The teacher is a constant: stop_gradient.
    assert grad_t is None or np.all(grad_t.numpy() == 0)

    # The same formula by central finite differences of the NumPy oracle.
    eps = 1e-4
    numeric = np.zeros_like(expected)
    for i in range(student.shape[0]):
        for j in range(student.shape[1]):
            up = student.astype("float64").copy()
            down = student.astype("float64").copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (
                numpy_distillation(teacher, up, temperature)
                - numpy_distillation(teacher, down, temperature)
            ) / (2 * eps)
    np.testing.assert_allclose(numeric, expected, atol=1e-7)


def test_low_precision_inputs_give_float32():
    teacher, student = _logits(8, 10, seed=5)
    loss = distillation_loss(
        keras.ops.cast(teacher, "bfloat16"), keras.ops.cast(student, "bfloat16"), 2.0
    )
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    np.testing.assert_allclose(_np(loss), numpy_distillation(teacher, student, 2.0), rtol=2e-2)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), "1", None])
def test_temperature_must_be_positive(temperature):
    teacher, student = _logits(2, 3)
    with pytest.raises(ValueError, match=re.escape(f"temperature={temperature!r}")):
        distillation_loss(teacher, student, temperature=temperature)
    with pytest.raises(ValueError, match="Received: temperature="):
        DistillationLoss(temperature=temperature)


@pytest.mark.parametrize(
    "teacher_shape, student_shape",
    [((4,), (4,)), ((4, 3), (4, 5)), ((4, 3), (2, 3)), ((2, 3, 1), (2, 3, 1))],
)
def test_shape_errors_name_the_shapes(teacher_shape, student_shape):
    teacher = np.zeros(teacher_shape, "float32")
    student = np.zeros(student_shape, "float32")
    with pytest.raises(ValueError, match=re.escape(f"teacher_logits.shape={teacher_shape}")):
        distillation_loss(teacher, student)


def test_loss_class_matches_function_weights_and_round_trips():
    teacher, student = _logits(6, 4, seed=8)
    loss_fn = DistillationLoss(temperature=2.0)
    np.testing.assert_allclose(
        _np(loss_fn(teacher, student)),
        numpy_distillation(teacher, student, 2.0),
        rtol=1e-5,
    )
    # sample_weight: Keras's default reduction is sum(w * l) / batch.
    weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.0], "float32")
    per_example = np.array(
        [numpy_distillation(teacher[i : i + 1], student[i : i + 1], 2.0) for i in range(6)]
    )
    np.testing.assert_allclose(
        _np(loss_fn(teacher, student, sample_weight=weights)),
        (weights * per_example).sum() / 6,
        rtol=1e-5,
    )
    config = loss_fn.get_config()
    assert config["temperature"] == 2.0 and config["name"] == "distillation"
    clone = DistillationLoss.from_config(config)
    assert clone.temperature == 2.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss_fn))
    assert isinstance(restored, DistillationLoss) and restored.temperature == 2.0
