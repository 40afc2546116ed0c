"""NT-Xent against a plain NumPy oracle, a hand-checked case, and the
keys/offset (cross-replica) path."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.losses import NTXent
from keras_simclr.losses import contrastive_accuracy
from keras_simclr.losses import nt_xent_loss


def numpy_nt_xent(z_a, z_b, temperature):
    """SimCLR eq. 1, one anchor at a time, in float64."""
    z = np.concatenate([z_a, z_b], axis=0).astype("float64")
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_n = z.shape[0]
    n = two_n // 2
    total = 0.0
    for i in range(two_n):
        positive = (i + n) % two_n
        others = [k for k in range(two_n) if k != i]  # the 2N - 1 others
        logits = np.array([z[i] @ z[k] / temperature for k in others])
        top = logits.max()
        log_sum_exp = top + math.log(np.exp(logits - top).sum())
        total += -(z[i] @ z[positive] / temperature) + log_sum_exp
    return total / two_n


def _pair(n, d, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    z_a = rng.normal(size=(n, d)).astype("float32")
    z_b = (z_a + noise * rng.normal(size=(n, d))).astype("float32")
    return z_a, z_b


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("d", [3, 16, 128])
@pytest.mark.parametrize("n", [2, 5, 32])
def test_matches_numpy_oracle(n, d, temperature):
    # Noisy views keep the loss O(0.1..10), where float32 can meet rtol 1e-5
    # (a loss near 0 is a difference of two ~1/T numbers: float32 leaves it
    # an absolute error of a few 1e-8, hence the atol).
    z_a, z_b = _pair(n, d, seed=n * 1000 + d, noise=1.5)
    got = float(nt_xent_loss(z_a, z_b, temperature=temperature))
    expected = numpy_nt_xent(z_a, z_b, temperature)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_hand_checked_tiny_case(temperature):
    # N=2, d=2, both views identical and orthogonal across images. Anchor
    # a0 = [1, 0] scores b0 = [1, 0] (positive): 1/T, b1 = [0, 1]: 0 and
    # a1 = [0, 1]: 0 (its own copy is excluded); all 4 anchors alike, so
    #     loss = -1/T + log(e^{1/T} + e^0 + e^0) = -1/T + log(e^{1/T} + 2).
    z = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    t = temperature
    expected = -1.0 / t + math.log(math.exp(1.0 / t) + 2.0)
    got = float(nt_xent_loss(z, z, temperature=t))
    # float32 log-sum-exp of ~1/T leaves an absolute error ~ulp(1/T).
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(expected, numpy_nt_xent(z, z, t), rtol=1e-12)


def test_hand_checked_opposite_negatives():
    # N=2, d=1: a0 = b0 = [1], a1 = b1 = [-1]. Anchor a0: positive b0 -> 1/T,
    # negatives b1, a1 -> -1/T each: loss = -1/T + log(e^{1/T} + 2 e^{-1/T}).
    z = np.array([[1.0], [-1.0]], "float32")
    t = 0.5
    expected = -1.0 / t + math.log(math.exp(1.0 / t) + 2.0 * math.exp(-1.0 / t))
    np.testing.assert_allclose(
        float(nt_xent_loss(z, z, temperature=t)), expected, rtol=1e-5
    )


def test_invariant_to_scaling_inputs():
    z_a, z_b = _pair(6, 16, seed=1)
    base = float(nt_xent_loss(z_a, z_b, temperature=0.2))
    scale_a = np.array([[0.01], [3.0], [100.0], [1.0], [0.5], [7.0]], "float32")
    scaled = float(nt_xent_loss(z_a * scale_a, z_b * 42.0, temperature=0.2))
    np.testing.assert_allclose(scaled, base, rtol=1e-5)


def test_symmetric_under_swapping_views():
    z_a, z_b = _pair(7, 12, seed=2)
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a, z_b, temperature=0.3)),
        float(nt_xent_loss(z_b, z_a, temperature=0.3)),
        rtol=1e-6,
    )


def test_invariant_to_permuting_pairs():
    z_a, z_b = _pair(9, 8, seed=3)
    perm = np.random.default_rng(0).permutation(9)
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a[perm], z_b[perm], temperature=0.1)),
        float(nt_xent_loss(z_a, z_b, temperature=0.1)),
        rtol=1e-5,
    )


def test_default_temperature_is_0_1():
    z_a, z_b = _pair(4, 8, seed=4)
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a, z_b)), numpy_nt_xent(z_a, z_b, 0.1), rtol=1e-5
    )


@pytest.mark.parametrize("replicas", [2, 4])
def test_keys_offset_split_equals_global_loss_and_gradients(replicas):
    n_global, d, t = 8, 16, 0.2
    z_a_np, z_b_np = _pair(n_global, d, seed=5)
    z_a = tf.constant(z_a_np)
    z_b = tf.constant(z_b_np)
    n = n_global // replicas

    with tf.GradientTape() as tape:
        tape.watch([z_a, z_b])
        single = nt_xent_loss(z_a, z_b, temperature=t)
    single_grads = tape.gradient(single, [z_a, z_b])

    with tf.GradientTape() as tape:
        tape.watch([z_a, z_b])
        per_replica = [
            nt_xent_loss(
                z_a[r * n : (r + 1) * n],
                z_b[r * n : (r + 1) * n],
                temperature=t,
                keys=(z_a, z_b),
                offset=r * n,
            )
            for r in range(replicas)
        ]
        total = tf.add_n([loss / replicas for loss in per_replica])
    grads = tape.gradient(total, [z_a, z_b])

    np.testing.assert_allclose(
        np.mean([float(v) for v in per_replica]), float(single), atol=1e-6
    )
    np.testing.assert_allclose(float(single), numpy_nt_xent(z_a_np, z_b_np, t), rtol=1e-5)
    for got, expected in zip(grads, single_grads):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)


def test_offset_as_tensor():
    z_a, z_b = _pair(8, 4, seed=6)
    with_int = nt_xent_loss(z_a[4:], z_b[4:], keys=(z_a, z_b), offset=4)
    with_tensor = nt_xent_loss(
        z_a[4:], z_b[4:], keys=(z_a, z_b), offset=tf.constant(4, "int32")
    )
    np.testing.assert_allclose(float(with_tensor), float(with_int), rtol=1e-7)


def test_keys_with_zero_offset_and_full_batch_equals_plain_call():
    z_a, z_b = _pair(5, 6, seed=7)
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a, z_b, temperature=0.5, keys=(z_a, z_b), offset=0)),
        float(nt_xent_loss(z_a, z_b, temperature=0.5)),
        rtol=1e-6,
    )


def test_bfloat16_inputs_close_to_float32():
    z_a, z_b = _pair(16, 32, seed=8)
    full = float(nt_xent_loss(z_a, z_b, temperature=0.1))
    half = nt_xent_loss(
        tf.cast(z_a, "bfloat16"), tf.cast(z_b, "bfloat16"), temperature=0.1
    )
    assert half.dtype == tf.float32
    np.testing.assert_allclose(float(half), full, rtol=2e-2)


def test_ntxent_class_equals_function():
    z_a, z_b = _pair(6, 10, seed=9)
    loss = NTXent(temperature=0.5)
    np.testing.assert_allclose(
        float(loss(z_a, z_b)),
        float(nt_xent_loss(z_a, z_b, temperature=0.5)),
        rtol=1e-6,
    )
    assert loss.name == "nt_xent"
    np.testing.assert_allclose(
        float(NTXent()(z_a, z_b)), float(nt_xent_loss(z_a, z_b)), rtol=1e-6
    )


def test_ntxent_config_round_trip():
    loss = NTXent(temperature=0.25, name="contrastive")
    config = loss.get_config()
    assert config["temperature"] == 0.25
    assert config["name"] == "contrastive"
    restored = NTXent.from_config(config)
    assert restored.temperature == 0.25
    assert restored.name == "contrastive"
    assert restored.get_config() == config

    serialized = keras.saving.serialize_keras_object(loss)
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(deserialized, NTXent)
    assert deserialized.get_config() == config
    z_a, z_b = _pair(4, 8, seed=10)
    np.testing.assert_allclose(
        float(deserialized(z_a, z_b)), float(loss(z_a, z_b)), rtol=1e-7
    )


def test_contrastive_accuracy_aligned_views_is_one():
    # Distinct images, both views identical: every positive scores 1,
    # every negative 0.
    z = np.eye(6, dtype="float32")
    assert float(contrastive_accuracy(z, z)) == 1.0
    # Nearly aligned random views, well separated in 64 dims.
    rng = np.random.default_rng(11)
    z_a = rng.normal(size=(8, 64)).astype("float32")
    z_b = z_a + 0.01 * rng.normal(size=(8, 64)).astype("float32")
    assert float(contrastive_accuracy(z_a, z_b)) == 1.0


def test_contrastive_accuracy_known_half():
    # Pairs 0 and 1 aligned (4 correct anchors); pairs 2 and 3 have their
    # second views swapped: a2 = e2 matches b3 = e2, not its positive b2 = e3,
    # and likewise for a3, b2, b3 (4 wrong anchors). 4 / 8 = 0.5.
    e = np.eye(4, dtype="float32")
    z_a = e[[0, 1, 2, 3]]
    z_b = e[[0, 1, 3, 2]]
    assert float(contrastive_accuracy(z_a, z_b)) == 0.5


def test_contrastive_accuracy_keys_offset_split():
    z_a, z_b = _pair(8, 3, seed=12)  # d=3: many wrong anchors
    whole = float(contrastive_accuracy(z_a, z_b))
    parts = [
        float(
            contrastive_accuracy(
                z_a[r * 2 : (r + 1) * 2], z_b[r * 2 : (r + 1) * 2],
                keys=(z_a, z_b), offset=r * 2,
            )
        )
        for r in range(4)
    ]
    np.testing.assert_allclose(np.mean(parts), whole, atol=1e-7)


@pytest.mark.parametrize("temperature", [0, 0.0, -1, -0.1, float("nan"), float("inf")])
def test_rejects_bad_temperature(temperature):
    z_a, z_b = _pair(4, 4)
    with pytest.raises(ValueError, match="Received: temperature="):
        nt_xent_loss(z_a, z_b, temperature=temperature)
    with pytest.raises(ValueError, match="Received: temperature="):
        NTXent(temperature=temperature)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(np.ones((4, 8), "float32"), np.ones((4, 7), "float32"))
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(np.ones((4, 8), "float32"), np.ones((5, 8), "float32"))


def test_rejects_rank_3_input():
    z = np.ones((2, 4, 8), "float32")
    with pytest.raises(ValueError, match="Received: z_a.shape"):
        nt_xent_loss(z, z)
    with pytest.raises(ValueError):
        contrastive_accuracy(z, z)


def test_rejects_single_pair():
    z = np.ones((1, 8), "float32")
    with pytest.raises(ValueError, match="at least 2 pairs"):
        nt_xent_loss(z, z)
