import math

import numpy as np
import pytest
from keras import ops

from keras_simclr.losses import info_nce_logits
from keras_simclr.losses import info_nce_loss


def _numpy_info_nce(q, k, queue, temperature):
    """MoCo's algorithm 1, written out in NumPy, one query at a time."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    losses = []
    for i in range(len(q)):
        scores = [q[i] @ k[i]] + [q[i] @ neg for neg in queue]
        scores = np.array(scores, dtype=np.float64) / temperature
        top = scores.max()
        log_sum = top + np.log(np.exp(scores - top).sum())
        losses.append(log_sum - scores[0])
    return float(np.mean(losses))


@pytest.mark.parametrize(
    "n, d, queue_size, temperature",
    [(2, 3, 1, 1.0), (8, 16, 32, 0.2), (5, 128, 300, 0.07), (16, 4, 7, 0.5)],
)
def test_matches_numpy_oracle(n, d, queue_size, temperature):
    rng = np.random.default_rng(n * 1000 + queue_size)
    q = rng.normal(size=(n, d)).astype("float32")
    k = rng.normal(size=(n, d)).astype("float32")
    queue = rng.normal(size=(queue_size, d)).astype("float32")
    queue /= np.linalg.norm(queue, axis=1, keepdims=True)
    got = float(info_nce_loss(q, k, queue, temperature=temperature))
    np.testing.assert_allclose(got, _numpy_info_nce(q, k, queue, temperature), rtol=1e-5)


def test_hand_checked_tiny_case():
    # q = k = e1 (unnormalized inputs are normalized), one negative e2, T = 1:
    # logits [1, 0], loss = log(e^1 + e^0) - 1 = log(1 + 1/e).
    q = np.array([[3.0, 0.0]], "float32")
    k = np.array([[0.5, 0.0]], "float32")
    queue = np.array([[0.0, 1.0]], "float32")
    np.testing.assert_allclose(
        float(info_nce_loss(q, k, queue, temperature=1.0)),
        math.log(1.0 + math.exp(-1.0)),
        rtol=1e-6,
    )
    logits = ops.convert_to_numpy(info_nce_logits(q, k, queue, temperature=0.5))
    np.testing.assert_allclose(logits, [[2.0, 0.0]], atol=1e-6)


def test_positive_is_column_zero_and_a_perfect_match_gives_a_low_loss():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 32)).astype("float32")
    queue = -q[:1].repeat(8, axis=0) / np.linalg.norm(q[:1])
    logits = ops.convert_to_numpy(info_nce_logits(q, q, queue, temperature=0.1))
    assert logits.shape == (4, 9)
    np.testing.assert_allclose(logits[:, 0], 10.0, rtol=1e-5)
    assert float(info_nce_loss(q[:1], q[:1], queue, temperature=0.1)) < 1e-6


@pytest.mark.parametrize("temperature", [0, -0.2, float("nan"), "0.2"])
def test_temperature_must_be_positive(temperature):
    q = np.ones((2, 3), "float32")
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(q, q, q, temperature=temperature)


def test_shape_errors_name_the_shapes():
    q = np.ones((4, 8), "float32")
    with pytest.raises(ValueError, match=r"key.shape=\(4, 7\)"):
        info_nce_loss(q, np.ones((4, 7), "float32"), q)
    with pytest.raises(ValueError, match=r"queue.shape=\(10, 5\)"):
        info_nce_loss(q, q, np.ones((10, 5), "float32"))


def test_a_zero_row_gets_a_finite_gradient():
    # A projection of zeros (all ReLU inputs negative) must not turn the
    # whole step into nan through the norm's derivative at 0.
    import tensorflow as tf

    from keras_simclr.losses import nt_xent_loss

    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 8)).astype("float32")
    z[1] = 0.0
    queue = rng.normal(size=(6, 8)).astype("float32")
    z_a, z_b = tf.Variable(z), tf.Variable(z[::-1].copy())
    with tf.GradientTape() as tape:
        loss = info_nce_loss(z_a, z_b, queue) + nt_xent_loss(z_a, z_b)
    grads = tape.gradient(loss, [z_a, z_b])
    assert np.isfinite(float(loss))
    assert all(np.isfinite(g.numpy()).all() for g in grads)
