"""SimCLR v2's memory in `ContrastiveModel(memory_size=...)`: the momentum
copy, the queue's order and wrap-around, the loss against `nt_xent_loss`,
`.keras` resume, two replicas and JAX."""

import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_simclr as ks
from keras_simclr.losses import contrastive_accuracy
from keras_simclr.losses import nt_xent_loss
from keras_simclr.models import ContrastiveModel
from tests.conftest import run_in_subprocess

SIZE = 8
BATCH = 4  # images per step: 2 x 4 = 8 momentum projections a step


def _encoder():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="tiny")


def _model(memory_size=20, memory_momentum=0.9, **kwargs):
    keras.utils.set_random_seed(0)
    return ContrastiveModel(
        _encoder(),
        ks.models.ProjectionHead(num_layers=2, hidden_dim=8, output_dim=6),
        temperature=0.5,
        memory_size=memory_size,
        memory_momentum=memory_momentum,
        **kwargs,
    )


def _pairs(steps, seed=0):
    """`steps` batches of (view_a, view_b) pairs, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    return [
        tuple(rng.random((BATCH, SIZE, SIZE, 3)).astype("float32") for _ in range(2))
        for _ in range(steps)
    ]


def _fit(model, pairs, learning_rate=0.1):
    if not model.compiled:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    x = tuple(np.concatenate([pair[i] for pair in pairs]) for i in range(2))
    return model.fit(x, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)


def _np(x):
    return np.array(ops.convert_to_numpy(x))


def _projections(encoder, head, pair):
    """L2-normalized projections of both views, as a training step makes
    them (BatchNorm on the batch's statistics), view a first."""
    views = np.concatenate(pair)
    z = _np(head(encoder(views, training=True), training=True))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _state(model):
    return {
        "queue": _np(model.memory_queue),
        "pointer": int(_np(model.memory_pointer)),
        "momentum": [_np(v) for v in model.momentum_encoder.weights],
    }


def test_queue_fills_in_order_and_wraps_around_with_the_momentum_projections():
    model = _model(memory_size=20, memory_momentum=0.9)
    pairs = _pairs(3)
    model(pairs[0], training=False)  # builds
    assert int(_np(model.momentum_initialized)) == 0
    initial = _np(model.memory_queue)
    np.testing.assert_allclose(np.linalg.norm(initial, axis=1), 1.0, rtol=1e-5)
    assert initial.std(axis=0).mean() > 0.1  # random rows, not one row
    # Step 1 copies the weights into the momentum copy before encoding: its
    # projections are those of the model as it was before the step.
    step1 = _projections(model.encoder, model.projection_head, pairs[0])
    before = [_np(v) for v in model.encoder.trainable_weights]
    _fit(model, pairs[:1])
    queue = _np(model.memory_queue)
    np.testing.assert_allclose(queue[:8], step1, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(queue[8:], initial[8:])
    assert int(_np(model.memory_pointer)) == 8
    assert int(_np(model.momentum_initialized)) == 1
    # Step 2: the copy has moved 10% of the way to the trained weights.
    after = [_np(v) for v in model.encoder.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(after, before))
    _fit(model, pairs[1:2])
    copies = [
        copy
        for copy, weight in zip(model.momentum_encoder.weights, model.encoder.weights)
        if weight.trainable
    ]
    assert len(copies) == len(before) == 4  # conv kernel and bias, BN gamma and beta
    for copy, b, a in zip(copies, before, after):
        np.testing.assert_allclose(_np(copy), 0.9 * b + 0.1 * a, rtol=1e-5, atol=1e-6)
    step2 = _projections(model.momentum_encoder, model.momentum_projection_head, pairs[1])
    queue = _np(model.memory_queue)
    np.testing.assert_allclose(queue[:8], step1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(queue[8:16], step2, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(queue[16:], initial[16:])
    # Step 3 fills rows 16-19 and wraps around over the oldest, rows 0-3.
    _fit(model, pairs[2:3])
    step3 = _projections(model.momentum_encoder, model.momentum_projection_head, pairs[2])
    queue = _np(model.memory_queue)
    np.testing.assert_allclose(queue[16:], step3[:4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(queue[:4], step3[4:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(queue[4:8], step1[4:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(queue[8:16], step2, rtol=1e-4, atol=1e-5)
    assert int(_np(model.memory_pointer)) == 4


@pytest.mark.slow
def test_the_loss_of_a_step_is_nt_xent_with_the_queue_before_the_step():
    model = _model(memory_size=16)
    pairs = _pairs(2, seed=1)
    _fit(model, pairs[:1])
    queue = _np(model.memory_queue)
    views = np.concatenate(pairs[1])
    # The step's projections: the weights before the step, batch statistics.
    z = _np(model.projection_head(model.encoder(views, training=True), training=True))
    z_a, z_b = z[:BATCH], z[BATCH:]
    history = _fit(model, pairs[1:]).history
    expected = float(nt_xent_loss(z_a, z_b, temperature=0.5, memory=queue))
    np.testing.assert_allclose(history["loss"][0], expected, rtol=1e-5)
    # The memory's negatives raise the loss above the in-batch one.
    assert expected > float(nt_xent_loss(z_a, z_b, temperature=0.5)) + 0.1
    np.testing.assert_allclose(
        history["contrastive_accuracy"][0],
        float(contrastive_accuracy(z_a, z_b, memory=queue)),
    )


@pytest.mark.slow
def test_evaluate_reads_the_queue_and_never_writes_it():
    model = _model(memory_size=16)
    pairs = _pairs(2, seed=2)
    _fit(model, pairs[:1])
    state = _state(model)
    out = model(pairs[1], training=False)
    z_a, z_b = np.split(_np(out["z"]), 2)
    result = model.evaluate(pairs[1], batch_size=BATCH, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        result["loss"],
        float(nt_xent_loss(z_a, z_b, temperature=0.5, memory=state["queue"])),
        rtol=1e-5,
    )
    after = _state(model)
    np.testing.assert_array_equal(after["queue"], state["queue"])
    assert after["pointer"] == state["pointer"] == 8
    for a, b in zip(after["momentum"], state["momentum"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_keras_file_keeps_the_memory_and_training_resumes_as_if_uninterrupted(tmp_path):
    model = _model(memory_size=20, memory_momentum=0.8, num_classes=None)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    pairs = _pairs(5, seed=3)
    _fit(model, pairs[:3])
    path = str(tmp_path / "memory.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    config = restored.get_config()
    assert (config["memory_size"], config["memory_momentum"]) == (20, 0.8)
    saved, loaded = _state(model), _state(restored)
    assert loaded["pointer"] == saved["pointer"] == 4
    np.testing.assert_array_equal(loaded["queue"], saved["queue"])
    for a, b in zip(loaded["momentum"], saved["momentum"]):
        np.testing.assert_array_equal(a, b)
    assert int(_np(restored.momentum_initialized)) == 1
    # The copy stays outside the optimizer's reach.
    assert len(restored.trainable_variables) == len(model.trainable_variables)
    # Two more steps on both: the same queue, copy and weights.
    _fit(model, pairs[3:])
    _fit(restored, pairs[3:])
    uninterrupted, resumed = _state(model), _state(restored)
    assert resumed["pointer"] == uninterrupted["pointer"] == 0
    np.testing.assert_allclose(resumed["queue"], uninterrupted["queue"], atol=1e-5)
    assert not np.allclose(resumed["queue"], saved["queue"], atol=1e-3)
    assert len(restored.weights) == len(model.weights)
    for a, b in zip(restored.weights, model.weights):
        assert a.name == b.name
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-5)


def test_memory_size_0_adds_nothing():
    pairs = _pairs(1)
    model = _model(memory_size=0)
    outputs = model(pairs[0], training=False)  # builds, as `plain` below
    keras.utils.set_random_seed(0)
    plain = ContrastiveModel(
        _encoder(),
        ks.models.ProjectionHead(num_layers=2, hidden_dim=8, output_dim=6),
        temperature=0.5,
    )
    plain(pairs[0], training=False)
    assert model.momentum_encoder is None
    assert sorted(outputs) == ["h", "z"]
    config = plain.get_config()
    assert (config["memory_size"], config["memory_momentum"]) == (0, 0.999)
    losses = [_fit(m, pairs).history["loss"][0] for m in (model, plain)]
    assert losses[0] == losses[1]
    assert [v.name for v in model.weights] == [v.name for v in plain.weights]
    assert len(model.weights) == len(model.encoder.weights) + len(model.projection_head.weights)
    for a, b in zip(model.weights, plain.weights):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_a_memory_smaller_than_one_step_is_refused():
    # 4 images a step: 8 momentum projections; a memory of 6 cannot hold them.
    model = _model(memory_size=6)
    with pytest.raises(ValueError, match="memory_size=6, global batch of 4 images"):
        _fit(model, _pairs(1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"memory_size": -1}, "memory_size=-1"),
        ({"memory_size": 2.5}, "memory_size=2.5"),
        ({"memory_size": True}, "memory_size=True"),
        ({"memory_size": "64"}, "memory_size='64'"),
        ({"memory_size": float("nan")}, "memory_size=nan"),
        ({"memory_momentum": 1.0}, "memory_momentum=1.0"),
        ({"memory_momentum": -0.1}, "memory_momentum=-0.1"),
    ],
)
def test_bad_memory_arguments_name_what_was_received(kwargs, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        _model(**kwargs)


def test_numpy_integers_are_accepted():
    model = _model(memory_size=np.int64(16), memory_momentum=np.float32(0.5))
    assert model.get_config()["memory_size"] == 16
    json.dumps(model.get_config()["memory_size"])


@pytest.mark.slow
def test_memory_with_micro_batch_size_equals_the_plain_steps():
    # Gradient caching encodes the momentum copy's views in chunks too;
    # without BatchNorm, 3 chunked steps equal 3 plain ones.
    def run(micro_batch_size):
        keras.utils.set_random_seed(0)
        encoder = keras.Sequential(
            [
                keras.Input((SIZE, SIZE, 3)),
                keras.layers.Conv2D(8, 3),
                keras.layers.GlobalAveragePooling2D(),
            ]
        )
        model = ContrastiveModel(
            encoder,
            keras.layers.Dense(6),
            temperature=0.5,
            memory_size=20,
            memory_momentum=0.5,
            micro_batch_size=micro_batch_size,
        )
        history = _fit(model, _pairs(3, seed=4), learning_rate=0.5).history
        return history["loss"][0], _state(model), [_np(w) for w in model.weights]

    plain, chunked = run(None), run(2)
    np.testing.assert_allclose(chunked[0], plain[0], rtol=1e-6)
    assert chunked[1]["pointer"] == plain[1]["pointer"] == 4
    np.testing.assert_allclose(chunked[1]["queue"], plain[1]["queue"], atol=1e-5)
    for a, b in zip(chunked[2], plain[2]):
        np.testing.assert_allclose(a, b, atol=1e-5)


_TF_REPLICAS = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import keras_simclr as ks

def build():
    # No BatchNorm: two replicas then compute exactly what one device does.
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3),
                                keras.layers.GlobalAveragePooling2D()])
    model = ks.models.ContrastiveModel(encoder, keras.layers.Dense(6), temperature=0.5,
                                       memory_size=24, memory_momentum=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    return model

rng = np.random.default_rng(0)
views = tuple(rng.random((3 * 8, 8, 8, 3)).astype("float32") for _ in range(2))
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    mirrored = build()
    h2 = mirrored.fit(views, batch_size=8, epochs=1, shuffle=False, verbose=0).history
single = build()
h1 = single.fit(views, batch_size=8, epochs=1, shuffle=False, verbose=0).history
copies = [np.asarray(v) for v in mirrored.memory_queue.value.values]
pointers = [int(v) for v in mirrored.memory_pointer.value.values]
queue = np.asarray(single.memory_queue)
print(json.dumps({
    "replicas": len(copies),
    "copies_equal": bool(np.array_equal(copies[0], copies[1])),
    "queue_error": float(np.abs(copies[0] - queue).max()),
    "pointers": pointers, "pointer": int(single.memory_pointer),
    "loss_2": h2["loss"], "loss_1": h1["loss"],
    "weight_error": max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                        for a, b in zip(mirrored.weights, single.weights)),
    "weights_moved": float(np.abs(np.asarray(single.encoder.weights[0])).max()),
}))
"""


@pytest.mark.process
def test_two_replicas_hold_the_same_queue_as_one_device():
    # 3 steps of a global batch of 8 (4 images a replica): 16 rows a step
    # into 24, wrapping around twice.
    out = run_in_subprocess(_TF_REPLICAS, backend="tensorflow")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["copies_equal"]
    assert result["pointers"] == [0, 0] and result["pointer"] == 0
    assert result["queue_error"] < 1e-5
    np.testing.assert_allclose(result["loss_2"], result["loss_1"], rtol=1e-5)
    assert result["weight_error"] < 1e-5


_JAX_FIT = """
import json, numpy as np, keras
assert keras.backend.backend() == "jax"
import keras_simclr as ks
inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
x = keras.layers.BatchNormalization()(x)
x = keras.layers.GlobalAveragePooling2D()(x)
# No seed: the queue's initializer must work when fit builds the model
# inside the traced step.
model = ks.models.ContrastiveModel(
    keras.Model(inputs, x), ks.models.ProjectionHead(hidden_dim=8, output_dim=6),
    temperature=0.5, memory_size=32, memory_momentum=0.5)
model.compile(optimizer=keras.optimizers.SGD(0.1))
rng = np.random.default_rng(0)
views = tuple(rng.random((24, 8, 8, 3)).astype("float32") for _ in range(2))
history = model.fit(views, batch_size=8, epochs=1, shuffle=False, verbose=0).history
# 3 steps of 16 rows into 32: the last step's rows wrapped around to rows
# 0 to 15, the projections of its views by the momentum copy as it is now
# (the step moved it before encoding); rows 16 to 31 are the second step's.
last = np.concatenate([views[0][16:], views[1][16:]])
z = np.array(model.momentum_projection_head(model.momentum_encoder(last, training=True),
                                            training=True))
z /= np.linalg.norm(z, axis=1, keepdims=True)
queue = np.asarray(model.memory_queue)
print(json.dumps({
    "loss": history["loss"],
    "pointer": int(model.memory_pointer),
    "initialized": int(model.momentum_initialized),
    "last_rows_error": float(np.abs(queue[:16] - z).max()),
}))
"""


@pytest.mark.process
def test_fit_with_a_memory_on_the_jax_backend():
    result = json.loads(run_in_subprocess(_JAX_FIT, backend="jax").strip().splitlines()[-1])
    assert len(result["loss"]) == 1 and np.isfinite(result["loss"][0])
    assert result["pointer"] == 16  # 3 steps of 16 rows into 32
    assert result["initialized"] == 1
    assert result["last_rows_error"] < 1e-4
