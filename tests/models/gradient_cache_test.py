"""Gradient caching (`micro_batch_size`): exact steps, BatchNorm per chunk,
memory that scales with the chunk, and the errors."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.models.gradient_cache import chunk_rows
from keras_simclr.models.gradient_cache import unchunk_rows
from tests.conftest import run_in_subprocess

# A BatchNorm-free encoder (GroupNorm): its examples never interact, so a
# chunked step must equal the plain step. Shared with the JAX child below.
_SETUP = """
import numpy as np, keras
from keras_simclr.models import ContrastiveModel

def group_norm_model(micro_batch_size, num_classes=None, dropout=0.0):
    keras.utils.set_random_seed(1)
    encoder = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GroupNormalization(2),
        keras.layers.Dropout(dropout),
        keras.layers.Conv2D(6, 3),
        keras.layers.GlobalAveragePooling2D(),
    ])
    model = ContrastiveModel(encoder, keras.layers.Dense(5), augmenter=None,
                             temperature=0.5, num_classes=num_classes,
                             micro_batch_size=micro_batch_size)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    return model

def views(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.random((2, n, 8, 8, 3)).astype("float32"))

def one_step(micro_batch_size, **kwargs):
    model = group_norm_model(micro_batch_size, **kwargs)
    x = views()
    y = np.arange(16) % 3 if kwargs.get("num_classes") else None
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    return model, history.history["loss"][0]

def max_weight_diff(a, b):
    return max(float(np.abs(np.asarray(u.value, "float32") - np.asarray(v.value, "float32")).max())
               for u, v in zip(a.weights, b.weights))
"""
exec(_SETUP)


def test_chunks_keep_both_views_of_an_image_together_and_unchunk_inverts():
    rows = np.arange(12, dtype="float32").reshape(12, 1, 1, 1)  # view a 0-5, view b 6-11
    chunks = keras.ops.convert_to_numpy(chunk_rows(rows, 2, paired=True))
    assert chunks[:, :, 0, 0, 0].tolist() == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]
    unpaired = keras.ops.convert_to_numpy(chunk_rows(rows, 3, paired=False))
    assert unpaired[:, :, 0, 0, 0].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    for paired, size in ((True, 2), (False, 3)):
        chunked = chunk_rows(rows, size, paired)
        back = keras.ops.convert_to_numpy(unchunk_rows(chunked, paired))
        np.testing.assert_array_equal(back, rows)


@pytest.mark.parametrize("micro_batch_size", [1, 4, 8])
def test_chunked_sgd_step_equals_the_plain_step_without_batchnorm(micro_batch_size):
    plain, plain_loss = one_step(None)  # noqa: F821 (from _SETUP)
    cached, cached_loss = one_step(micro_batch_size)  # noqa: F821
    np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-6)
    assert max_weight_diff(plain, cached) < 1e-5  # noqa: F821
    # The step moved the weights (the test could fail).
    fresh = group_norm_model(None)  # noqa: F821
    assert max_weight_diff(plain, fresh) > 1e-3  # noqa: F821


def test_the_second_pass_draws_the_dropout_masks_of_the_first():
    # One chunk of all 16 images draws the masks the plain step draws; the
    # gradient is exact only if the recomputation draws them again.
    plain, plain_loss = one_step(None, dropout=0.5)  # noqa: F821
    cached, cached_loss = one_step(16, dropout=0.5)  # noqa: F821
    np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-6)
    assert max_weight_diff(plain, cached) < 1e-5  # noqa: F821
    without, _ = one_step(16)  # noqa: F821
    assert max_weight_diff(plain, without) > 1e-3  # noqa: F821
    # Each chunk draws its own mask: the seed state moves on once per chunk
    # (the plain step and one chunk: once).
    for micro_batch_size, draws in ((None, 1), (16, 1), (4, 4)):
        model, _ = one_step(micro_batch_size, dropout=0.5)  # noqa: F821
        (seed,) = [v for v in model.encoder.non_trainable_variables if "seed" in v.path]
        assert int(np.asarray(seed.value)[1]) == draws


def test_chunked_step_with_the_online_probe_equals_the_plain_step():
    plain, plain_loss = one_step(None, num_classes=3)  # noqa: F821
    cached, cached_loss = one_step(4, num_classes=3)  # noqa: F821
    np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-6)
    assert max_weight_diff(plain, cached) < 1e-5  # noqa: F821


def test_chunked_step_under_mixed_bfloat16_follows_the_plain_step():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        plain, plain_loss = one_step(None)  # noqa: F821
        cached, cached_loss = one_step(4)  # noqa: F821
        float32_weights = [np.asarray(w.value) for w in plain.weights]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert plain.encoder.layers[0].compute_dtype == "bfloat16"
    assert cached.encoder.layers[0].compute_dtype == "bfloat16"
    assert all(w.dtype == np.float32 for w in float32_weights)
    # bfloat16 has 8 bits of mantissa: chunks change the rounding only.
    np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-2)
    assert max_weight_diff(plain, cached) < 2e-2  # noqa: F821


def test_micro_batch_size_is_validated_and_serialized(tmp_path):
    for bad in (0, -4, 2.5, "8", True):
        with pytest.raises(ValueError, match=r"micro_batch_size.*Received: micro_batch_size="):
            group_norm_model(bad)  # noqa: F821
    model, _ = one_step(4)  # noqa: F821
    assert model.get_config()["micro_batch_size"] == 4
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.micro_batch_size == 4
    assert max_weight_diff(model, loaded) == 0.0  # noqa: F821


def test_batches_that_do_not_split_into_chunks_are_refused_before_training():
    model = group_norm_model(4)  # noqa: F821
    x = views(18)  # noqa: F821
    with pytest.raises(ValueError, match=r"micro_batch_size=4.*Received: a batch of 6 images"):
        model.fit(x, batch_size=6, epochs=1, verbose=0)
    # The last partial batch (18 = 2 x 8 + 2) is dropped by default with
    # micro_batch_size, and refused when kept.
    history = model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match=r"Received: a batch of 2 images"):
        model.fit(x, batch_size=8, epochs=1, verbose=0, drop_remainder=False)
    pairs = tf.data.Dataset.from_tensor_slices(x).map(lambda a, b: ((a, b),))
    dataset = pairs.batch(8)
    with pytest.raises(ValueError, match=r"drop_remainder=True.*Received: a dataset of batches"):
        model.fit(dataset, epochs=1, verbose=0)
    fixed = pairs.batch(8, drop_remainder=True)
    assert np.isfinite(model.fit(fixed, epochs=1, verbose=0).history["loss"][0])


def test_evaluation_runs_the_whole_batch_unchunked():
    # Validation is a forward pass without gradient: never chunked, so its
    # values are the plain model's at any batch size.
    cached, _ = one_step(4)  # noqa: F821
    plain = group_norm_model(None)  # noqa: F821
    x = views(10, seed=3)  # noqa: F821
    plain.build([v.shape for v in x])
    plain.set_weights(cached.get_weights())
    a = cached.evaluate(x, batch_size=10, verbose=0, return_dict=True)
    b = plain.evaluate(x, batch_size=10, verbose=0, return_dict=True)
    assert a == b


@pytest.mark.process
def test_jax_chunked_step_is_exact_and_its_memory_scales_with_the_chunk():
    out = run_in_subprocess(
        _SETUP
        + """
import json, jax
assert keras.backend.backend() == "jax"
plain, plain_loss = one_step(None)
cached, cached_loss = one_step(4)
probe_plain, _ = one_step(None, num_classes=3)
probe_cached, _ = one_step(8, num_classes=3)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
mixed_plain, mixed_plain_loss = one_step(None)
mixed_cached, mixed_cached_loss = one_step(4)
keras.mixed_precision.set_global_policy("float32")

def temp_bytes(micro_batch_size, batch=64):
    # XLA's own accounting of the compiled gradient's scratch memory.
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((16, 16, 3))] + [
        layer for _ in range(3) for layer in (
            keras.layers.Conv2D(16, 3, padding="same"),
            keras.layers.BatchNormalization(), keras.layers.ReLU())
    ] + [keras.layers.GlobalAveragePooling2D()])
    model = ContrastiveModel(encoder, keras.layers.Dense(8), augmenter=None,
                             micro_batch_size=micro_batch_size)
    x = tuple(np.random.default_rng(0).random((2, batch, 16, 16, 3)).astype("float32"))
    model.build([v.shape for v in x])
    model.compile(optimizer="sgd")
    model.optimizer.build(model.trainable_variables)
    values = lambda variables: [v.value for v in variables]
    state = (values(model.non_trainable_variables), values(model.metrics_variables))

    def loss(trainable):
        return model.compute_loss_and_updates(
            trainable, *state, x, None, None, training=True,
            optimizer_variables=values(model.optimizer.variables))[0]

    compiled = jax.jit(jax.grad(loss)).lower(values(model.trainable_variables)).compile()
    return compiled.memory_analysis().temp_size_in_bytes

print(json.dumps({
    "loss": [plain_loss, cached_loss],
    "diff": max_weight_diff(plain, cached),
    "moved": max_weight_diff(plain, group_norm_model(None)),
    "probe_diff": max_weight_diff(probe_plain, probe_cached),
    "mixed_loss": [mixed_plain_loss, mixed_cached_loss],
    "mixed_diff": max_weight_diff(mixed_plain, mixed_cached),
    "temp": {str(m): temp_bytes(m) for m in (None, 16, 4)},
}))
""",
        backend="jax",
    )
    result = json.loads(out.strip().splitlines()[-1])
    np.testing.assert_allclose(result["loss"][0], result["loss"][1], rtol=1e-6)
    assert result["diff"] < 1e-5
    assert result["moved"] > 1e-3
    assert result["probe_diff"] < 1e-5
    np.testing.assert_allclose(*result["mixed_loss"], rtol=1e-2)
    assert result["mixed_diff"] < 2e-2
    temp = result["temp"]
    # Batch 64: chunks of 16 and of 4 images keep a fraction of the
    # activations (measured: see the note in BENCHMARKS.md).
    assert temp["16"] < temp["None"] / 2
    assert temp["4"] < temp["16"] / 2


@pytest.mark.process
def test_resnet_chunked_step_equals_two_replicas_without_synchronized_batchnorm():
    # With BatchNorm, each chunk normalizes alone: one device with chunks of
    # 8 images equals MirroredStrategy over 2 replicas of 8 images each, and
    # 2 replicas that chunk their 8 images by 4 equal one device chunking 16
    # by 4. Synchronized BatchNorm is refused with micro_batch_size.
    out = run_in_subprocess(
        """
import json, numpy as np, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_simclr.models import ContrastiveModel, ProjectionHead, ResNet

def build(micro_batch_size, sync=False):
    keras.utils.set_random_seed(1)
    model = ContrastiveModel(
        ResNet(18, cifar_stem=True, width_multiplier=0.125, input_shape=(8, 8, 3),
               sync_batchnorm=sync),
        ProjectionHead(output_dim=8), augmenter=None, temperature=0.5,
        micro_batch_size=micro_batch_size)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    return model

x = tuple(np.random.default_rng(0).random((2, 16, 8, 8, 3)).astype("float32"))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def fit(model):
    return model.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False).history["loss"][0]

def compare(single, mirrored):
    trainable, moving = 0.0, 0.0
    for a, b in zip(single.weights, mirrored.weights):
        if a.trainable:
            diff = np.abs(np.asarray(a.value) - np.asarray(b.value))
            trainable = max(trainable, float(diff.max()))
        else:
            # Each replica keeps its own moving statistics; the chunked step
            # moves them by the mean of the chunks' updates.
            copies = [np.asarray(c) for c in strategy.experimental_local_results(b._value)]
            moving = max(moving, float(np.abs(np.mean(copies, axis=0) - np.asarray(a.value)).max()))
    return trainable, moving

results = {}
for single_micro, mirrored_micro in ((8, None), (4, 4)):
    single = build(single_micro)
    single_loss = fit(single)
    with strategy.scope():
        mirrored = build(mirrored_micro)
    mirrored_loss = fit(mirrored)
    fresh = build(None)
    moved = max(float(np.abs(np.asarray(a.value) - np.asarray(b.value)).max())
                for a, b in zip(single.weights, fresh.weights) if a.trainable)
    key = f"{single_micro}-{mirrored_micro}"
    results[key] = [single_loss, mirrored_loss, *compare(single, mirrored), moved]
with strategy.scope():
    synced = build(4, sync=True)
try:
    fit(synced)
    results["sync_error"] = None
except ValueError as error:
    results["sync_error"] = str(error)
print(json.dumps(results))
""",
        backend="tensorflow",
    )
    results = json.loads(out.strip().splitlines()[-1])
    for key in ("8-None", "4-4"):
        single_loss, mirrored_loss, trainable, moving, moved = results[key]
        np.testing.assert_allclose(single_loss, mirrored_loss, rtol=1e-5)
        assert trainable < 1e-5, key
        assert moving < 1e-5, key
        assert moved > 1e-3, key
    assert "synchronized BatchNorm" in results["sync_error"]
    assert "sync_batchnorm=False" in results["sync_error"]


def test_moco_chunks_its_queries_exactly(monkeypatch):
    from keras_simclr.models import MoCoModel
    from keras_simclr.models import two_view_model

    chunked = []

    def counting(encoder, head, views, chunk_size, paired=True):
        chunked.append((int(views.shape[0]), chunk_size, paired))
        return encode(encoder, head, views, chunk_size, paired=paired)

    encode = two_view_model.encode_in_chunks
    monkeypatch.setattr(two_view_model, "encode_in_chunks", counting)

    def moco_step(micro_batch_size):
        keras.utils.set_random_seed(1)
        encoder = group_norm_model(None).encoder  # noqa: F821
        model = MoCoModel(
            encoder,
            keras.layers.Dense(5),
            queue_size=64,
            shuffle_bn_splits=1,
            seed=3,
            micro_batch_size=micro_batch_size,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(views(), batch_size=16, epochs=2, verbose=0, shuffle=False)  # noqa: F821
        return model, history.history["loss"]

    plain, plain_loss = moco_step(None)
    cached, cached_loss = moco_step(4)
    np.testing.assert_allclose(cached_loss, plain_loss, rtol=1e-6)
    assert max_weight_diff(plain, cached) < 1e-5  # noqa: F821
    np.testing.assert_allclose(
        np.asarray(cached.queue.value), np.asarray(plain.queue.value), atol=1e-6
    )
    assert int(np.asarray(cached.queue_pointer.value)) == 32
    # The 16 queries were chunked, the keys were not.
    assert set(chunked) == {(16, 4, False)}


def test_tensorflow_runs_one_chunk_at_a_time():
    # The chunks do not depend on each other: a `tf.while_loop` left at its
    # default runs up to 10 at once, with their activations (ResNet-18 x0.25
    # at batch 1024 in chunks of 64: a step's RSS grew 1,920 MB against
    # 537 MB one at a time). Both loops, forward and backward, are serial.
    from keras_simclr.models.gradient_cache import encode_in_chunks

    model = group_norm_model(4)  # noqa: F821
    x = views()  # noqa: F821
    model.build([v.shape for v in x])

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            _, z = encode_in_chunks(model.encoder, model.projection_head, images, 4)
            loss = tf.reduce_sum(z**2)
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.concat(x, axis=0)).graph
    loops = []
    for function in [graph, *graph._functions.values()]:
        function = getattr(function, "graph", function)
        for op in function.get_operations():
            if op.type in ("While", "StatelessWhile"):
                loops.append(op.get_attr("parallel_iterations"))
    assert len(loops) >= 2  # the forward and the backward loop
    assert set(loops) == {1}


def test_views_are_drawn_chunk_by_chunk_in_the_model_layout():
    from keras_simclr.augment import SimCLRAugmentation
    from keras_simclr.models.gradient_cache import augment_in_chunks

    images = (np.random.default_rng(0).random((8, 16, 16, 3)) * 255).astype("uint8")
    augmenter = SimCLRAugmentation(16, preset="cifar", seed=5)
    augmenter.build(images.shape)
    start = [np.asarray(v.value) for v in augmenter.non_trainable_variables]
    views = keras.ops.convert_to_numpy(augment_in_chunks(augmenter, images, 4))
    # The same draws by hand: each chunk of 4 images on [chunk; chunk], the
    # random state carried from one chunk to the next.
    state, expected = start, []
    for chunk in (images[:4], images[4:]):
        pair, state = augmenter.stateless_call([], state, np.concatenate([chunk, chunk]))
        expected.append(keras.ops.convert_to_numpy(pair))
    a = np.concatenate([expected[0][:4], expected[1][:4]])
    b = np.concatenate([expected[0][4:], expected[1][4:]])
    np.testing.assert_array_equal(views, np.concatenate([a, b]))
    for variable, value in zip(augmenter.non_trainable_variables, state):
        np.testing.assert_array_equal(np.asarray(variable.value), np.asarray(value))
    assert not np.array_equal(views[:8], views[8:])  # two different views
    with pytest.raises(ValueError, match=r"Received: 8 images per batch, micro_batch_size=3"):
        augment_in_chunks(augmenter, images, 3)


def test_float_state_no_chunk_changes_stays_bit_identical():
    # The moving averages move by the mean of the chunks' changes: a frozen
    # layer's weights (non-trainable float state) are not averaged into
    # rounding noise, with any number of chunks (here 3).
    model = group_norm_model(4)  # noqa: F821
    model.encoder.layers[0].trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    x = views(12)  # noqa: F821
    model.build([v.shape for v in x])
    frozen = [np.array(v.value) for v in model.encoder.layers[0].weights]
    model.fit(x, batch_size=12, epochs=2, verbose=0)
    for before, variable in zip(frozen, model.encoder.layers[0].weights):
        np.testing.assert_array_equal(np.asarray(variable.value), before)
    assert not model.encoder.layers[0].trainable_weights
