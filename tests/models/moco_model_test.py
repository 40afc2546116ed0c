import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_simclr as ks
from keras_simclr.losses import info_nce_loss
from keras_simclr.models import MoCoModel
from tests.conftest import run_in_subprocess

SIZE = 8


def _encoder(batchnorm=True, name="tiny"):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=name)


def _model(batchnorm=True, head_layers=2, **kwargs):
    kwargs.setdefault("queue_size", 20)
    kwargs.setdefault("shuffle_bn_splits", 1)
    kwargs.setdefault("seed", 0)
    return MoCoModel(
        _encoder(batchnorm),
        ks.models.ProjectionHead(num_layers=head_layers, hidden_dim=8, output_dim=6),
        **kwargs,
    )


def _pair(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.random((n, SIZE, SIZE, 3)).astype("float32"),
        rng.random((n, SIZE, SIZE, 3)).astype("float32"),
    )


def _fit(model, pair, steps=1, learning_rate=0.0):
    if not model.compiled:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    x = (np.concatenate([pair[0]] * steps), np.concatenate([pair[1]] * steps))
    return model.fit(x, batch_size=len(pair[0]), epochs=1, shuffle=False, verbose=0)


def _values(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def _started_with_other_keys(model, pair):
    """One lr=0 step (it copies the query weights), then keys moved away.

    Returns the query and key variables and their values now.
    """
    _fit(model, pair)
    _perturb_keys(model)
    query = model.encoder.weights + model.projection_head.weights
    key = model.key_encoder.weights + model.key_projection_head.weights
    return query, key, _values(query), _values(key)


def _perturb_keys(model):
    rng = np.random.default_rng(1)
    for v in model.key_encoder.weights + model.key_projection_head.weights:
        if v.dtype.startswith("float"):
            v.assign(np.asarray(v) + rng.normal(size=v.shape).astype("float32"))


def test_first_step_copies_the_query_weights_into_a_frozen_key_encoder():
    model = _model()
    pair = _pair()
    model(pair, training=False)
    assert int(model.key_initialized) == 0
    query = model.encoder.weights + model.projection_head.weights
    key = model.key_encoder.weights + model.key_projection_head.weights
    assert len(query) == len(key) > 0
    _fit(model, pair)  # lr = 0: the query weights stay put
    assert int(model.key_initialized) == 1
    for v, q, k in zip(query, _values(query), _values(key)):
        if v.trainable:
            np.testing.assert_array_equal(q, k)
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in key)
    assert all(id(v) in trainable for v in query if v.trainable)
    # The key layers stay trainable, so their BatchNorm uses batch statistics.
    assert model.key_encoder.trainable


@pytest.mark.parametrize("momentum", [0.9, 0.5])
def test_momentum_update_against_hand_computed_weights(momentum):
    model = _model(momentum=momentum)
    pair = _pair()
    query, key, q0, k0 = _started_with_other_keys(model, pair)
    # lr = 0: the query weights stay put, two EMA steps towards them.
    _fit(model, pair, steps=2)
    for v, q, k, k2 in zip(query, q0, k0, _values(key)):
        if v.trainable:
            np.testing.assert_allclose(
                k2, momentum**2 * k + (1 - momentum**2) * q, rtol=1e-5, atol=1e-6
            )
        elif "moving" not in v.path:
            np.testing.assert_array_equal(k2, k)
    # Moving statistics are the key encoder's own (MoCo averages parameters).
    key_moving = [k for v, k in zip(query, k0) if "moving_mean" in v.path]
    after = [k for v, k in zip(query, _values(key)) if "moving_mean" in v.path]
    assert key_moving and not np.allclose(key_moving[0], after[0])


def test_momentum_update_uses_the_query_weights_before_the_step():
    # Seeded: from some initial weights (seed 22) the lr=0.5 step collapses
    # the queries (z_std 7e-9) and the second step moves no weight.
    keras.utils.set_random_seed(0)
    model = _model(momentum=0.9)
    pair = _pair()
    _fit(model, pair, steps=1, learning_rate=0.5)
    _perturb_keys(model)
    query = model.encoder.weights + model.projection_head.weights
    key = model.key_encoder.weights + model.key_projection_head.weights
    q0, k0 = _values(query), _values(key)
    _fit(model, pair, steps=1)
    moved = False
    for v, q, k, q1, k1 in zip(query, q0, k0, _values(query), _values(key)):
        if v.trainable:
            moved = moved or not np.allclose(q1, q)
            np.testing.assert_allclose(k1, 0.9 * k + 0.1 * q, rtol=1e-5, atol=1e-6)
    assert moved


def test_state_hooks_run_once_per_training_step_in_order_and_never_in_evaluate():
    model = _model(momentum=0.9)
    events = []
    model.update_before_step = _recording(model.update_before_step, events, "ema")
    model.update_after_loss = _recording(model.update_after_loss, events, "enqueue")
    objective = model.objective
    model.objective = _recording(objective, events, "loss")
    model.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    pair = _pair()
    _fit(model, pair, steps=3)
    assert events == ["ema", "loss", "enqueue"] * 3
    assert int(model.queue_pointer) == 3 * len(pair[0]) % model.queue_size
    del events[:]
    key = _values(model.key_encoder.weights)
    queue = np.array(model.queue)
    model.evaluate(pair, batch_size=len(pair[0]), verbose=0)
    assert events == ["loss"]
    np.testing.assert_array_equal(np.array(model.queue), queue)
    for before, after in zip(key, _values(model.key_encoder.weights)):
        np.testing.assert_array_equal(before, after)


def _recording(method, events, name):
    def recorded(*args, **kwargs):
        events.append(name)
        return method(*args, **kwargs)

    return recorded


def test_queue_enqueue_order_and_wrap_around():
    model = _model(queue_size=5)
    model(_pair(), training=False)
    rng = np.random.default_rng(3)
    batches = [rng.normal(size=(2, 6)).astype("float32") for _ in range(3)]
    normalized = [b / np.linalg.norm(b, axis=1, keepdims=True) for b in batches]
    before = np.array(model.queue)
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, rtol=1e-5)
    model._enqueue(batches[0])
    model._enqueue(batches[1])
    queue = np.array(model.queue)
    np.testing.assert_allclose(queue[:2], normalized[0], rtol=1e-6)
    np.testing.assert_allclose(queue[2:4], normalized[1], rtol=1e-6)
    np.testing.assert_array_equal(queue[4], before[4])
    assert int(model.queue_pointer) == 4
    # The third batch fills the last row and wraps around to row 0.
    model._enqueue(batches[2])
    queue = np.array(model.queue)
    np.testing.assert_allclose(queue[4], normalized[2][0], rtol=1e-6)
    np.testing.assert_allclose(queue[0], normalized[2][1], rtol=1e-6)
    np.testing.assert_allclose(queue[1:4], np.concatenate(normalized[:2])[1:], rtol=1e-6)
    assert int(model.queue_pointer) == 1


def test_fit_loss_and_queue_equal_a_hand_computation():
    model = _model(momentum=0.9, queue_size=20)
    pair = _pair()
    model(pair, training=False)
    queue_init = np.array(model.queue)
    np.testing.assert_allclose(np.linalg.norm(queue_init, axis=1), 1.0, rtol=1e-5)
    _fit(model, pair)
    _perturb_keys(model)
    queue0 = np.array(model.queue)
    np.testing.assert_array_equal(queue0[8:], queue_init[8:])
    history = _fit(model, pair)
    # After the step (lr = 0) the query weights are unchanged and the key
    # weights are the ones the step used; BatchNorm in training mode uses
    # batch statistics, so recomputing gives the step's q and k.
    q = model.projection_head(model.encoder(pair[0], training=True), training=True)
    k = model.key_projection_head(model.key_encoder(pair[1], training=True), training=True)
    q, k = ops.convert_to_numpy(q), ops.convert_to_numpy(k)
    expected = float(info_nce_loss(q, k, queue0, temperature=0.2))
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-4)
    queue = np.array(model.queue)
    np.testing.assert_allclose(
        queue[8:16], k / np.linalg.norm(k, axis=1, keepdims=True), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_array_equal(queue[:8], queue0[:8])
    np.testing.assert_array_equal(queue[16:], queue0[16:])
    assert int(model.queue_pointer) == 16


def test_shuffled_key_groups_are_put_back_in_order():
    pair = _pair(8)
    keys = {}
    for batchnorm in (False, True):
        for splits in (1, 4):
            model = _model(
                batchnorm=batchnorm, head_layers=1, momentum=0.0, shuffle_bn_splits=splits
            )
            model(pair, training=False)
            # Same weights for every variant.
            model.set_weights(
                [
                    np.full(w.shape, 0.1 * (i + 1), w.dtype)
                    * np.cos(np.arange(w.size).reshape(w.shape))
                    for i, w in enumerate(model.get_weights())
                ]
            )
            keys[batchnorm, splits] = ops.convert_to_numpy(model(pair, training=True)["k"])
    # Without BatchNorm the groups do not matter: the unshuffled keys are
    # the unsplit keys, row for row.
    np.testing.assert_allclose(keys[False, 4], keys[False, 1], rtol=1e-5, atol=1e-6)
    # With BatchNorm each group has its own statistics.
    assert not np.allclose(keys[True, 4], keys[True, 1], atol=1e-3)


@pytest.mark.slow
def test_uint8_images_with_an_augmenter_train_on_real_cifar(cifar_images):
    images = cifar_images[0][:64]
    model = MoCoModel(
        ks.models.ResNet(18, cifar_stem=True, width_multiplier=0.125, input_shape=(32, 32, 3)),
        ks.models.ProjectionHead(output_dim=16),
        augmenter=ks.augment.SimCLRAugmentation(32, preset="moco_v2", seed=0),
        queue_size=64,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.03, momentum=0.9))
    history = model.fit(images, batch_size=16, epochs=2, verbose=0).history
    assert set(history) >= {"loss", "contrastive_accuracy", "z_std"}
    assert all(np.isfinite(history["loss"]))
    # 8 steps of 16 keys in a queue of 64: the pointer wrapped twice.
    assert int(model.queue_pointer) == 0
    # ln(1 + K) is the loss of a uniform guess over the K + 1 candidates.
    assert history["loss"][0] < np.log(65) + 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"queue_size": 0}, "queue_size=0"),
        ({"momentum": 1.0}, "momentum=1.0"),
        ({"shuffle_bn_splits": 0}, "shuffle_bn_splits=0"),
        ({"temperature": 0}, "temperature=0"),
    ],
)
def test_bad_arguments_name_what_was_received(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_batch_errors_name_the_batch():
    model = _model(shuffle_bn_splits=3)
    with pytest.raises(ValueError, match="batch of 8, shuffle_bn_splits=3"):
        _fit(model, _pair(8))
    model = _model(queue_size=4)
    with pytest.raises(ValueError, match="queue_size=4, global batch of 8"):
        _fit(model, _pair(8))


def test_keras_file_round_trip_keeps_queue_and_key_encoder(tmp_path):
    model = _model(momentum=0.9, num_classes=3)
    pair = _pair()
    model(pair, training=False)
    _perturb_keys(model)
    _fit(model, pair, steps=3, learning_rate=0.1)
    path = str(tmp_path / "moco.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    config = restored.get_config()
    assert (config["queue_size"], config["momentum"], config["shuffle_bn_splits"]) == (20, 0.9, 1)
    assert int(restored.queue_pointer) == int(model.queue_pointer) == 4
    assert int(restored.key_initialized) == 1
    np.testing.assert_array_equal(np.array(restored.queue), np.array(model.queue))
    for a, b in zip(restored.key_encoder.weights, model.key_encoder.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    # Restored key weights are still outside the optimizer's reach.
    assert len(restored.trainable_variables) == len(model.trainable_variables)
    out_a = model(pair, training=False)
    out_b = restored(pair, training=False)
    np.testing.assert_allclose(
        ops.convert_to_numpy(out_a["logits"]), ops.convert_to_numpy(out_b["logits"]), atol=1e-5
    )
    # Resuming: the same next step on both gives the same queue.
    restored.compile(optimizer=keras.optimizers.SGD(0.0))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    _fit(model, pair)
    _fit(restored, pair)
    np.testing.assert_allclose(np.array(restored.queue), np.array(model.queue), atol=1e-5)
    assert int(restored.queue_pointer) == 12


def test_mixed_bfloat16_keeps_the_momentum_update_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _model(momentum=0.999)
        pair = _pair()
        query, key, q0, k0 = _started_with_other_keys(model, pair)
        history = _fit(model, pair)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"][0])
    assert model.queue.dtype == "float32"
    for v, q, k, k1 in zip(query, q0, k0, _values(key)):
        if v.trainable:
            assert k1.dtype == np.float32
            expected = np.float32(0.999) * k + np.float32(0.001) * q
            # bfloat16 rounding would be off by ~1e-2 relative.
            np.testing.assert_allclose(k1, expected, rtol=1e-6, atol=1e-7)


_JAX_STEP = """
import json, numpy as np, keras
assert keras.backend.backend() == "jax"
import keras_simclr as ks
inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
x = keras.layers.BatchNormalization()(x)
x = keras.layers.GlobalAveragePooling2D()(x)
# No seed: the queue initializer and the key shuffle must work unseeded
# when fit builds the model inside the traced step.
model = ks.models.MoCoModel(keras.Model(inputs, x), ks.models.ProjectionHead(output_dim=6),
                            queue_size=12, momentum=0.5, shuffle_bn_splits=2)
rng = np.random.default_rng(0)
pair = (rng.random((8, 8, 8, 3)).astype("float32"), rng.random((8, 8, 8, 3)).astype("float32"))
model.compile(optimizer=keras.optimizers.SGD(0.0))
model.fit(pair, batch_size=8, epochs=1, verbose=0)  # copies the query weights
k = model.key_encoder.weights[0]
k.assign(np.asarray(k) + 1.0)
k0, q0 = np.array(k), np.array(model.encoder.weights[0])
h = model.fit((np.concatenate([pair[0]] * 2), np.concatenate([pair[1]] * 2)),
              batch_size=8, epochs=1, shuffle=False, verbose=0)
# As the class docstring's example: uint8 images, an unseeded MoCo v2
# augmenter (crop, color, blur), no seed anywhere.
docstring_model = ks.models.MoCoModel(
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3),
                      keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D()]),
    ks.models.ProjectionHead(output_dim=6),
    augmenter=ks.augment.SimCLRAugmentation(8, preset="moco_v2"),
    queue_size=32, shuffle_bn_splits=2)
docstring_model.compile(optimizer=keras.optimizers.SGD(0.03, momentum=0.9))
images = rng.integers(0, 256, size=(16, 8, 8, 3)).astype("uint8")
augmented = docstring_model.fit(images, batch_size=8, verbose=0)
queue = np.asarray(docstring_model.queue)
print(json.dumps({
    "loss": h.history["loss"][0],
    "pointer": int(model.queue_pointer),
    "ema_error": float(np.abs(np.array(k) - (0.25 * k0 + 0.75 * q0)).max()),
    "augmented_loss": augmented.history["loss"][0],
    "augmented_pointer": int(docstring_model.queue_pointer),
    # Rows not yet written: the initial queue, random unit rows.
    "initial_rows": np.linalg.norm(queue[16:], axis=1).tolist(),
    "initial_spread": float(queue[16:].std(axis=0).mean()),
}))
"""


@pytest.mark.process
def test_builds_and_steps_on_the_jax_backend():
    result = json.loads(run_in_subprocess(_JAX_STEP, backend="jax").strip().splitlines()[-1])
    assert np.isfinite(result["loss"])
    assert result["pointer"] == 0  # 24 keys into a ring of 12
    assert result["ema_error"] < 1e-6
    assert np.isfinite(result["augmented_loss"])
    assert result["augmented_pointer"] == 16
    np.testing.assert_allclose(result["initial_rows"], 1.0, rtol=1e-5)
    assert result["initial_spread"] > 0.1  # random rows, not one row repeated


_TF_REPLICAS = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import keras_simclr as ks
from keras import ops
from keras_simclr.losses import info_nce_loss

def encoder():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x)

strategy = ks.distribute.resolve_strategy(devices=["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = ks.models.MoCoModel(encoder(), ks.models.ProjectionHead(output_dim=6),
                                queue_size=24, momentum=0.9, shuffle_bn_splits=1, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.build(((None, 8, 8, 3), (None, 8, 8, 3)))
rng = np.random.default_rng(0)
a = rng.random((16, 8, 8, 3)).astype("float32")
b = rng.random((16, 8, 8, 3)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices(((a, b),)).batch(16)
queue0 = np.array(model.queue)
h = model.fit(ds, epochs=1, shuffle=False, verbose=0)
# Each replica holds 8 pairs; BatchNorm statistics are per replica.
expected_losses, keys = [], []
for half in (slice(0, 8), slice(8, 16)):
    q = model.projection_head(model.encoder(a[half], training=True), training=True)
    k = model.key_projection_head(model.key_encoder(b[half], training=True), training=True)
    expected_losses.append(float(info_nce_loss(q, k, queue0, temperature=0.2)))
    k = ops.convert_to_numpy(k)
    keys.append(k / np.linalg.norm(k, axis=1, keepdims=True))
queue = np.array(model.queue)
print(json.dumps({
    "loss": h.history["loss"][0],
    "expected": float(np.mean(expected_losses)),
    "pointer": int(ops.convert_to_numpy(model.queue_pointer.value)),
    "queue_error": float(np.abs(queue[:16] - np.concatenate(keys)).max()),
    "rest_unchanged": bool(np.array_equal(queue[16:], queue0[16:])),
}))
"""


@pytest.mark.process
def test_two_replicas_enqueue_the_global_batch_in_replica_order():
    out = run_in_subprocess(_TF_REPLICAS, backend="tensorflow")
    result = json.loads(out.strip().splitlines()[-1])
    np.testing.assert_allclose(result["loss"], result["expected"], rtol=1e-4)
    assert result["pointer"] == 16
    assert result["queue_error"] < 1e-4
    assert result["rest_unchanged"]


def test_fit_checks_its_inputs_as_contrastive_model_does():
    # MoCoModel inherits ContrastiveModel.fit: float views in [0, 255] ...
    view_q, view_k = _pair(8)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    with pytest.raises(ValueError, match=r"by 255.*view_a with dtype=float32, min=0.*max=2"):
        model.fit((view_q * 255, view_k), batch_size=8, verbose=0)
    # ... and a last batch of 1 pair, with MoCo's own reason.
    view_q, view_k = _pair(9)
    with pytest.raises(
        ValueError,
        match=r"MoCoModel needs at least 2 images.*BatchNorm.*9 training images with batch_size=8",
    ):
        model.fit((view_q, view_k), batch_size=8, verbose=0)
