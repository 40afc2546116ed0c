"""NT-Xent against a plain NumPy oracle, a hand-checked case, the
keys/offset (cross-replica) path and the memory of extra negatives."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.losses import NTXent
from keras_simclr.losses import contrastive_accuracy
from keras_simclr.losses import nt_xent_loss
from tests.conftest import run_in_subprocess


def numpy_nt_xent(z_a, z_b, temperature, memory=None, pairs=None):
    """SimCLR eq. 1, one anchor at a time, in float64.

    `memory`: (K, d) extra negatives of every anchor. `pairs`: the indices
    of the pairs whose 2 anchors are averaged (a replica's share); all by
    default.
    """
    z = np.concatenate([z_a, z_b], axis=0).astype("float64")
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_n = z.shape[0]
    n = two_n // 2
    if memory is None:
        memory = np.zeros((0, z.shape[1]))
    memory = np.asarray(memory, "float64")
    memory = memory / np.linalg.norm(memory, axis=1, keepdims=True)
    pairs = range(n) if pairs is None else pairs
    anchors = [i for i in range(two_n) if i % n in pairs]
    total = 0.0
    for i in anchors:
        positive = (i + n) % two_n
        others = [k for k in range(two_n) if k != i]  # the 2N - 1 others
        logits = np.array(
            [z[i] @ z[k] / temperature for k in others]
            + [z[i] @ row / temperature for row in memory]
        )
        top = logits.max()
        log_sum_exp = top + math.log(np.exp(logits - top).sum())
        total += -(z[i] @ z[positive] / temperature) + log_sum_exp
    return total / len(anchors)


def numpy_contrastive_accuracy(z_a, z_b, memory=None):
    """Anchors whose positive beats every other row and memory row, float64."""
    z = np.concatenate([z_a, z_b]).astype("float64")
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    two_n = len(z)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    if memory is not None:
        memory = np.asarray(memory, "float64")
        memory = memory / np.linalg.norm(memory, axis=1, keepdims=True)
        sim = np.concatenate([sim, z @ memory.T], axis=1)
    positives = (np.arange(two_n) + two_n // 2) % two_n
    correct = [
        sim[i, positives[i]] > np.delete(sim[i], [i, positives[i]]).max() for i in range(two_n)
    ]
    return np.mean(correct)


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
    np.testing.assert_allclose(float(nt_xent_loss(z, z, temperature=t)), expected, rtol=1e-5)


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


@pytest.mark.parametrize("replicas", [2, 4, 8])
def test_keys_offset_split_equals_global_loss_and_gradients(replicas):
    # Each "replica" r holds pairs [r * n, (r + 1) * n) of a global batch of
    # 8; keys are the concatenation of every replica's projections (what a
    # cross-replica all-gather returns), so gradients reach each local z both
    # as an anchor and as a key. replicas=8 leaves one pair per replica: its
    # negatives all come from the other replicas.
    n_global, d, t = 8, 16, 0.2
    z_a_np, z_b_np = _pair(n_global, d, seed=5)
    n = n_global // replicas

    z_a, z_b = tf.constant(z_a_np), tf.constant(z_b_np)
    with tf.GradientTape() as tape:
        tape.watch([z_a, z_b])
        single = nt_xent_loss(z_a, z_b, temperature=t)
    single_grads = tape.gradient(single, [z_a, z_b])

    local_a = [tf.constant(z_a_np[r * n : (r + 1) * n]) for r in range(replicas)]
    local_b = [tf.constant(z_b_np[r * n : (r + 1) * n]) for r in range(replicas)]
    with tf.GradientTape() as tape:
        tape.watch(local_a + local_b)
        keys = (tf.concat(local_a, axis=0), tf.concat(local_b, axis=0))
        per_replica = [
            nt_xent_loss(local_a[r], local_b[r], temperature=t, keys=keys, offset=r * n)
            for r in range(replicas)
        ]
        total = tf.add_n(per_replica) / replicas
    grads_a, grads_b = tape.gradient(total, [local_a, local_b])

    expected = numpy_nt_xent(z_a_np, z_b_np, t)
    np.testing.assert_allclose(float(single), expected, rtol=1e-5)
    np.testing.assert_allclose(np.mean([float(v) for v in per_replica]), float(single), atol=1e-6)
    # The replicas' losses differ: each one really is a partial loss.
    assert np.ptp([float(v) for v in per_replica]) > 1e-3
    np.testing.assert_allclose(
        tf.concat(grads_a, axis=0).numpy(), single_grads[0].numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        tf.concat(grads_b, axis=0).numpy(), single_grads[1].numpy(), atol=1e-6
    )


def test_gradients_match_finite_differences_of_the_oracle():
    # Central differences of the float64 oracle; the loss's own float32
    # gradient must match them to ~1e-4 (the mask must not leak gradient).
    z_a_np, z_b_np = _pair(3, 4, seed=13)
    t, h = 0.5, 1e-5
    z_a, z_b = tf.constant(z_a_np), tf.constant(z_b_np)
    with tf.GradientTape() as tape:
        tape.watch([z_a, z_b])
        loss = nt_xent_loss(z_a, z_b, temperature=t)
    got = [g.numpy() for g in tape.gradient(loss, [z_a, z_b])]
    base = [z_a_np.astype("float64"), z_b_np.astype("float64")]
    for which in range(2):
        numeric = np.zeros_like(base[which])
        for idx in np.ndindex(*base[which].shape):
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[which][idx] += h
            minus[which][idx] -= h
            numeric[idx] = (numpy_nt_xent(*plus, t) - numpy_nt_xent(*minus, t)) / (2 * h)
        assert np.abs(numeric).max() > 0.05
        np.testing.assert_allclose(got[which], numeric, rtol=1e-3, atol=1e-5)


def test_offset_as_tensor():
    z_a, z_b = _pair(8, 4, seed=6)
    with_int = nt_xent_loss(z_a[4:], z_b[4:], keys=(z_a, z_b), offset=4)
    with_tensor = nt_xent_loss(z_a[4:], z_b[4:], keys=(z_a, z_b), offset=tf.constant(4, "int32"))
    np.testing.assert_allclose(float(with_tensor), float(with_int), rtol=1e-7)


def test_keys_with_zero_offset_and_full_batch_equals_plain_call():
    z_a, z_b = _pair(5, 6, seed=7)
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a, z_b, temperature=0.5, keys=(z_a, z_b), offset=0)),
        float(nt_xent_loss(z_a, z_b, temperature=0.5)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    z_a, z_b = _pair(16, 32, seed=8)
    low_a, low_b = tf.cast(z_a, dtype), tf.cast(z_b, dtype)
    low = nt_xent_loss(low_a, low_b, temperature=0.1)
    assert low.dtype == tf.float32
    # Exactly the float32 computation on the rounded inputs: nothing is
    # computed in low precision after the cast.
    rounded = nt_xent_loss(tf.cast(low_a, "float32"), tf.cast(low_b, "float32"), temperature=0.1)
    np.testing.assert_allclose(float(low), float(rounded), rtol=1e-6)
    # And close to the float32 loss of the unrounded inputs. Only the input
    # rounding differs (bf16 has an 8-bit mantissa): measured 1.5e-3
    # relative for bfloat16 and 2.3e-4 for float16 at N=16, d=32.
    full = float(nt_xent_loss(z_a, z_b, temperature=0.1))
    np.testing.assert_allclose(float(low), full, rtol=5e-3 if dtype == "bfloat16" else 1e-3)


def test_float16_inputs_with_large_norms_do_not_overflow():
    # |z|^2 ~ 1e7 overflows float16 (max 65504): normalizing before the
    # cast to float32 would give inf / nan.
    rng = np.random.default_rng(14)
    z_a = (1000.0 * rng.normal(size=(6, 10))).astype("float16")
    z_b = (z_a.astype("float32") * 1.5 + 300.0 * rng.normal(size=(6, 10))).astype("float16")
    got = float(nt_xent_loss(z_a, z_b, temperature=0.2))
    assert np.isfinite(got)
    np.testing.assert_allclose(
        got,
        numpy_nt_xent(z_a.astype("float32"), z_b.astype("float32"), 0.2),
        rtol=1e-5,
    )


def test_unknown_batch_size_in_a_tf_function():
    spec = tf.TensorSpec([None, 8], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def both(z_a, z_b):
        return (
            nt_xent_loss(z_a, z_b, temperature=0.3),
            contrastive_accuracy(z_a, z_b),
        )

    for n in (3, 7):
        z_a, z_b = _pair(n, 8, seed=15 + n)
        loss, accuracy = both(z_a, z_b)
        np.testing.assert_allclose(float(loss), numpy_nt_xent(z_a, z_b, 0.3), rtol=1e-5)
        np.testing.assert_allclose(float(accuracy), float(contrastive_accuracy(z_a, z_b)), rtol=0)


def _memory(k, d, seed):
    return np.random.default_rng(seed).normal(size=(k, d)).astype("float32")


@pytest.mark.parametrize("temperature", [0.1, 0.5])
@pytest.mark.parametrize("n, d, k", [(2, 3, 1), (5, 16, 7), (8, 16, 64), (3, 128, 300)])
def test_memory_matches_numpy_oracle(n, d, k, temperature):
    z_a, z_b = _pair(n, d, seed=100 + n, noise=1.5)
    # Rows of any norm: the memory is normalized inside.
    memory = _memory(k, d, seed=k) * 3.0
    got = float(nt_xent_loss(z_a, z_b, temperature=temperature, memory=memory))
    expected = numpy_nt_xent(z_a, z_b, temperature, memory=memory)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # The memory adds negatives: the loss grows.
    assert expected > numpy_nt_xent(z_a, z_b, temperature) + 1e-3


@pytest.mark.parametrize("replicas", [2, 4])
def test_memory_with_keys_and_offset_matches_each_replicas_share(replicas):
    # Each replica scores its own anchors against the global keys and the
    # same memory: its loss is the oracle's mean over its pairs' anchors.
    n_global, d, k, t = 8, 6, 10, 0.2
    z_a, z_b = _pair(n_global, d, seed=23)
    memory = _memory(k, d, seed=24)
    n = n_global // replicas
    losses = []
    for r in range(replicas):
        local = slice(r * n, (r + 1) * n)
        loss = float(
            nt_xent_loss(
                z_a[local], z_b[local], temperature=t, keys=(z_a, z_b), offset=r * n, memory=memory
            )
        )
        expected = numpy_nt_xent(z_a, z_b, t, memory=memory, pairs=range(r * n, (r + 1) * n))
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
        losses.append(loss)
    np.testing.assert_allclose(
        np.mean(losses), numpy_nt_xent(z_a, z_b, t, memory=memory), rtol=1e-5
    )


def test_memory_none_or_empty_is_the_plain_loss():
    z_a, z_b = _pair(6, 8, seed=25)
    plain = nt_xent_loss(z_a, z_b, temperature=0.2)
    assert float(nt_xent_loss(z_a, z_b, temperature=0.2, memory=None)) == float(plain)
    empty = np.zeros((0, 8), "float32")
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a, z_b, temperature=0.2, memory=empty)), float(plain), rtol=1e-7
    )
    assert float(contrastive_accuracy(z_a, z_b, memory=None)) == float(
        contrastive_accuracy(z_a, z_b)
    )


def test_no_gradient_flows_into_the_memory():
    # The views' gradients match central differences of the float64 oracle
    # with the memory; the memory's own gradient is None (stop_gradient).
    z_a_np, z_b_np = _pair(3, 4, seed=26)
    memory_np = _memory(5, 4, seed=27)
    t, h = 0.5, 1e-5
    z_a, z_b, memory = (tf.constant(v) for v in (z_a_np, z_b_np, memory_np))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z_a, z_b, memory])
        loss = nt_xent_loss(z_a, z_b, temperature=t, memory=memory)
        accuracy = contrastive_accuracy(z_a, z_b, memory=memory)
    grad_a, grad_b, grad_memory = tape.gradient(loss, [z_a, z_b, memory])
    assert grad_memory is None
    assert tape.gradient(accuracy, memory) is None
    base = [z_a_np.astype("float64"), z_b_np.astype("float64")]
    for which, got in enumerate([grad_a.numpy(), grad_b.numpy()]):
        numeric = np.zeros_like(base[which])
        for idx in np.ndindex(*base[which].shape):
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[which][idx] += h
            minus[which][idx] -= h
            numeric[idx] = (
                numpy_nt_xent(*plus, t, memory=memory_np)
                - numpy_nt_xent(*minus, t, memory=memory_np)
            ) / (2 * h)
        assert np.abs(numeric).max() > 0.05
        np.testing.assert_allclose(got, numeric, rtol=1e-3, atol=1e-5)


def test_contrastive_accuracy_with_memory_against_numpy():
    z_a, z_b = _pair(16, 4, seed=28, noise=0.7)
    memory = _memory(40, 4, seed=29)
    expected = numpy_contrastive_accuracy(z_a, z_b, memory)
    # Memory rows beat some positives that won without them.
    assert 0.1 < expected < numpy_contrastive_accuracy(z_a, z_b)
    np.testing.assert_allclose(float(contrastive_accuracy(z_a, z_b, memory=memory)), expected)
    # With keys and offset: the mean of the replicas' shares.
    parts = [
        float(
            contrastive_accuracy(
                z_a[r * 8 : (r + 1) * 8],
                z_b[r * 8 : (r + 1) * 8],
                keys=(z_a, z_b),
                offset=r * 8,
                memory=memory,
            )
        )
        for r in range(2)
    ]
    np.testing.assert_allclose(np.mean(parts), expected, atol=1e-7)


def test_memory_equal_to_a_positive_makes_the_anchor_wrong():
    # a0 = b0 = e0, a1 = b1 = e1: every anchor right; a memory row e0 ties
    # the positive of a0 and b0 (a tie is not a hit).
    z = np.eye(2, dtype="float32")
    assert float(contrastive_accuracy(z, z)) == 1.0
    assert float(contrastive_accuracy(z, z, memory=z[:1])) == 0.5


def test_rejects_bad_memory():
    z_a, z_b = _pair(4, 8, seed=30)
    with pytest.raises(ValueError, match=r"Received: memory.shape=\(8,\), z_a.shape=\(4, 8\)"):
        nt_xent_loss(z_a, z_b, memory=np.ones((8,), "float32"))
    with pytest.raises(ValueError, match=r"Received: memory.shape=\(3, 7\), z_a.shape=\(4, 8\)"):
        nt_xent_loss(z_a, z_b, memory=np.ones((3, 7), "float32"))
    with pytest.raises(ValueError, match=r"memory.shape=\(2, 3, 8\)"):
        contrastive_accuracy(z_a, z_b, memory=np.ones((2, 3, 8), "float32"))


_JAX = """
import json, numpy as np, jax, jax.numpy as jnp
import keras
assert keras.backend.backend() == "jax"
from keras_simclr.losses import nt_xent_loss, contrastive_accuracy
p = json.loads({payload!r})
z_a, z_b = jnp.array(p["z_a"], "float32"), jnp.array(p["z_b"], "float32")
memory = jnp.array(p["memory"], "float32")
n = 2

@jax.jit
def replica_loss(z_a, z_b, offset):
    # offset is traced: the masks are built from a tensor offset.
    local_a = jax.lax.dynamic_slice_in_dim(z_a, offset, n)
    local_b = jax.lax.dynamic_slice_in_dim(z_b, offset, n)
    return nt_xent_loss(local_a, local_b, temperature=0.2, keys=(z_a, z_b),
                        offset=offset)

def split_loss(z_a, z_b):
    return sum(replica_loss(z_a, z_b, jnp.int32(r * n)) for r in range(4)) / 4

single = jax.jit(lambda a, b: nt_xent_loss(a, b, temperature=0.2))
grads_single = jax.grad(single, argnums=(0, 1))(z_a, z_b)
grads_split = jax.grad(split_loss, argnums=(0, 1))(z_a, z_b)
with_memory = jax.jit(lambda a, b, m: nt_xent_loss(a, b, temperature=0.2, memory=m))
grads_memory = jax.grad(with_memory, argnums=(0, 1, 2))(z_a, z_b, memory)
print(json.dumps({{
    "single": float(single(z_a, z_b)),
    "split": float(split_loss(z_a, z_b)),
    "grad_diff": max(float(jnp.abs(a - b).max())
                     for a, b in zip(grads_single, grads_split)),
    "grad_max": float(jnp.abs(grads_single[0]).max()),
    "bf16": float(nt_xent_loss(z_a.astype("bfloat16"), z_b.astype("bfloat16"),
                               temperature=0.2)),
    "bf16_rounded": float(nt_xent_loss(
        z_a.astype("bfloat16").astype("float32"),
        z_b.astype("bfloat16").astype("float32"), temperature=0.2)),
    "accuracy": float(contrastive_accuracy(z_a, z_b)),
    "memory_loss": float(with_memory(z_a, z_b, memory)),
    "memory_accuracy": float(contrastive_accuracy(z_a, z_b, memory=memory)),
    "memory_grad_max": float(jnp.abs(grads_memory[2]).max()),
    "memory_view_grad_max": float(jnp.abs(grads_memory[0]).max()),
}}))
"""


@pytest.mark.process
def test_jax_backend_matches_oracle_with_traced_offset_and_memory():
    z_a, z_b = _pair(8, 6, seed=16)
    memory = _memory(5, 6, seed=31)
    payload = json.dumps({"z_a": z_a.tolist(), "z_b": z_b.tolist(), "memory": memory.tolist()})
    out = run_in_subprocess(_JAX.format(payload=payload), backend="jax", timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    expected = numpy_nt_xent(z_a, z_b, 0.2)
    np.testing.assert_allclose(result["single"], expected, rtol=1e-5)
    np.testing.assert_allclose(result["split"], expected, rtol=1e-5)
    assert result["grad_max"] > 0.01
    assert result["grad_diff"] < 1e-6
    np.testing.assert_allclose(result["bf16"], result["bf16_rounded"], rtol=1e-6)
    np.testing.assert_allclose(result["accuracy"], float(contrastive_accuracy(z_a, z_b)), rtol=0)
    np.testing.assert_allclose(
        result["memory_loss"], numpy_nt_xent(z_a, z_b, 0.2, memory=memory), rtol=1e-5
    )
    assert result["memory_accuracy"] == numpy_contrastive_accuracy(z_a, z_b, memory)
    # No gradient into the memory; the views still get theirs.
    assert result["memory_grad_max"] == 0.0
    assert result["memory_view_grad_max"] > 0.01


def test_ntxent_class_equals_function():
    z_a, z_b = _pair(6, 10, seed=9)
    loss = NTXent(temperature=0.5)
    np.testing.assert_allclose(
        float(loss(z_a, z_b)),
        float(nt_xent_loss(z_a, z_b, temperature=0.5)),
        rtol=1e-6,
    )
    assert loss.name == "nt_xent"
    np.testing.assert_allclose(float(NTXent()(z_a, z_b)), float(nt_xent_loss(z_a, z_b)), rtol=1e-6)


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
    np.testing.assert_allclose(float(deserialized(z_a, z_b)), float(loss(z_a, z_b)), rtol=1e-7)


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
                z_a[r * 2 : (r + 1) * 2],
                z_b[r * 2 : (r + 1) * 2],
                keys=(z_a, z_b),
                offset=r * 2,
            )
        )
        for r in range(4)
    ]
    np.testing.assert_allclose(np.mean(parts), whole, atol=1e-7)


def test_contrastive_accuracy_collapsed_embeddings_is_zero():
    # Every embedding identical: each positive only ties its negatives, which
    # is not a correct retrieval (an argmax would credit the first column).
    z = np.ones((5, 4), "float32")
    assert float(contrastive_accuracy(z, z)) == 0.0


def test_contrastive_accuracy_against_numpy():
    z_a, z_b = _pair(16, 4, seed=17, noise=1.0)
    expected = numpy_contrastive_accuracy(z_a, z_b)
    assert 0.2 < expected < 0.9  # a non-trivial case
    np.testing.assert_allclose(float(contrastive_accuracy(z_a, z_b)), expected)


@pytest.mark.parametrize(
    "temperature", [0, 0.0, -1, -0.1, float("nan"), float("inf"), "0.1", True, None]
)
def test_rejects_bad_temperature(temperature):
    z_a, z_b = _pair(4, 4)
    with pytest.raises(ValueError, match="Received: temperature="):
        nt_xent_loss(z_a, z_b, temperature=temperature)
    with pytest.raises(ValueError, match="Received: temperature="):
        NTXent(temperature=temperature)


def test_error_message_names_the_temperature():
    with pytest.raises(ValueError, match=r"Received: temperature=0$"):
        NTXent(temperature=0)


def test_accepts_numpy_temperature():
    z_a, z_b = _pair(4, 4, seed=18)
    np.testing.assert_allclose(
        float(nt_xent_loss(z_a, z_b, temperature=np.float32(0.5))),
        numpy_nt_xent(z_a, z_b, 0.5),
        rtol=1e-5,
    )
    assert NTXent(np.float64(0.5)).get_config()["temperature"] == 0.5


def test_rejects_mismatched_shapes():
    message = r"Received: z_a.shape=\(4, 8\), z_b.shape=\(4, 7\)"
    with pytest.raises(ValueError, match=message):
        nt_xent_loss(np.ones((4, 8), "float32"), np.ones((4, 7), "float32"))
    with pytest.raises(ValueError, match=r"z_b.shape=\(5, 8\)"):
        nt_xent_loss(np.ones((4, 8), "float32"), np.ones((5, 8), "float32"))
    with pytest.raises(ValueError, match="same shape"):
        NTXent()(np.ones((4, 8), "float32"), np.ones((5, 8), "float32"))


def test_rejects_rank_3_input():
    z = np.ones((2, 4, 8), "float32")
    with pytest.raises(ValueError, match=r"Received: z_a.shape=\(2, 4, 8\)"):
        nt_xent_loss(z, z)
    with pytest.raises(ValueError, match="Received: z_a.shape"):
        contrastive_accuracy(z, z)
    with pytest.raises(ValueError, match="Received: z_a.shape"):
        nt_xent_loss(np.ones((8,), "float32"), np.ones((8,), "float32"))


def test_rejects_single_pair():
    z = np.ones((1, 8), "float32")
    with pytest.raises(ValueError, match=r"no negatives. Received: z_a.shape=\(1, 8\)"):
        nt_xent_loss(z, z)
    with pytest.raises(ValueError, match="no negatives"):
        contrastive_accuracy(z, z)
    # One local pair is fine when the global batch has negatives.
    z_a, z_b = _pair(4, 8, seed=19)
    loss = nt_xent_loss(z_a[2:3], z_b[2:3], keys=(z_a, z_b), offset=2)
    assert np.isfinite(float(loss))
    with pytest.raises(ValueError, match=r"keys_a.shape=\(1, 8\)"):
        nt_xent_loss(z, z, keys=(z, z))


def test_rejects_bad_keys():
    z_a, z_b = _pair(4, 8, seed=20)
    with pytest.raises(ValueError, match="Received: keys of type"):
        nt_xent_loss(z_a, z_b, keys=z_a)
    with pytest.raises(ValueError, match=r"keys_a.shape=\(8, 8\), keys_b.shape=\(6, 8\)"):
        nt_xent_loss(z_a, z_b, keys=(np.ones((8, 8)), np.ones((6, 8))))
    with pytest.raises(ValueError, match=r"keys_a.shape=\(8, 5\).*z_a.shape=\(4, 8\)"):
        nt_xent_loss(z_a, z_b, keys=(np.ones((8, 5)), np.ones((8, 5))))
    with pytest.raises(ValueError, match="must contain the local batch"):
        nt_xent_loss(z_a, z_b, keys=(z_a[:2], z_b[:2]))


def test_ntxent_rejects_sample_weight():
    z_a, z_b = _pair(4, 8, seed=21)
    with pytest.raises(ValueError, match=r"Received: sample_weight of shape \(4,\)"):
        NTXent()(z_a, z_b, sample_weight=np.ones((4,), "float32"))


def test_ntxent_with_bfloat16_inputs():
    z_a, z_b = _pair(8, 16, seed=22)
    low_a, low_b = tf.cast(z_a, "bfloat16"), tf.cast(z_b, "bfloat16")
    value = NTXent(0.2)(low_a, low_b)
    assert value.dtype == tf.float32
    np.testing.assert_allclose(
        float(value),
        float(nt_xent_loss(tf.cast(low_a, "float32"), tf.cast(low_b, "float32"), 0.2)),
        rtol=1e-6,
    )
