"""The layer contract every test file checks in one call, as keras-hub's `run_layer_test`.

`run_layer_test(layer_cls, init_kwargs, input_data, expected_output_shape)` builds the layer
symbolically and eagerly, compares the output shape with `compute_output_shape`, round-trips
`get_config` (through `from_config` and Keras serialization, the clone computing the same
outputs), saves a model holding the layer to `.keras` and reloads it with equal outputs, checks
the layer under the `mixed_bfloat16` and `bfloat16` global policies, and, for random layers,
that a seed fixes the outputs and the state advances between calls. On the TensorFlow backend
it also maps the layer over a `tf.data` pipeline and traces it with an unknown batch size, with
XLA and without (the graph matching eager). Layer-specific numbers stay in each test file.
"""

import os
import re
import tempfile

import keras
import numpy as np
import pytest


def to_numpy(x):
    """A backend tensor (or array) as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def _as_float(input_data):
    """uint8 images -> float32 in [0, 1]; anything else unchanged."""
    if input_data.dtype == np.uint8:
        return input_data.astype("float32") / 255.0
    return input_data


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    *,
    expected_config=None,
    random=False,
    min_change=0.0,
    keeps_float32=False,
    output_range=None,
    uint8_atol=None,
    supports_unbatched=False,
    bad_input_shapes=(),
    bad_input_match="Received: images.shape={shape}",
    saving_atol=0.0,
    graph_atol=1e-5,
    run_tf_data_test=False,
):
    """Checks the contract of `layer_cls(**init_kwargs)` on `input_data`.

    Args:
        layer_cls: the `keras.layers.Layer` subclass.
        init_kwargs: its constructor arguments; for a random layer they hold an int `seed`.
        input_data: a NumPy batch whose length is a multiple of 4 and at least 8. uint8
            images are also fed as float32 / 255 (and the float form goes through `.keras`).
        expected_output_shape: the output shape on `input_data`, batch axis included.
        expected_config: entries `get_config()` must hold (tuples compared as tuples).
        random: the layer draws from a seed: equal seeds give equal outputs, seed + 1 and a
            second call give outputs differing by more than `min_change` somewhere.
        min_change: the least largest difference between two random draws.
        keeps_float32: the layer computes in float32 whatever the global dtype policy (the
            outputs under `mixed_bfloat16` and `bfloat16` equal float32's to 1e-6); otherwise
            it follows the policy (compute dtype and output dtype bfloat16, variables float32
            under `mixed_bfloat16`).
        output_range: `(low, high)` every output value lies in, or None.
        uint8_atol: uint8 input and the same input as floats in [0, 1] give outputs equal to
            this tolerance; None skips it.
        supports_unbatched: the layer also maps one example without batch axis.
        bad_input_shapes: input shapes the layer refuses with a `ValueError` whose message
            matches `bad_input_match.format(shape=shape)` (escaped).
        saving_atol: tolerance between the reloaded model's outputs and the original's
            (0: bit-equal).
        graph_atol: tolerance between a `tf.function` graph (no XLA) and eager outputs.
        run_tf_data_test: map the layer over `tf.data` (TensorFlow backend only).

    Returns:
        A dict with the eager outputs of a fresh layer: `"output"` on `input_data`, and
        `"float_output"` on its float form when `input_data` is uint8.
    """
    input_data = np.asarray(input_data)
    expected_output_shape = tuple(expected_output_shape)
    assert len(input_data) >= 8 and len(input_data) % 4 == 0, input_data.shape
    assert expected_output_shape[0] == len(input_data), expected_output_shape
    if random:
        assert isinstance(init_kwargs.get("seed"), int), "a random layer needs an int seed"

    def make(**overrides):
        return layer_cls(**{**init_kwargs, **overrides})

    is_tensorflow = keras.backend.backend() == "tensorflow"

    def check_output(out, shape, what):
        assert tuple(out.shape) == shape, (what, out.shape, shape)
        if keeps_float32:
            assert out.dtype == np.float32, (what, out.dtype)
        if output_range is not None:
            low, high = output_range
            assert out.min() >= low and out.max() <= high, (what, out.min(), out.max())

    # Build: symbolic call and compute_output_shape agree with the eager output.
    layer = make()
    batch_shape = (None,) + expected_output_shape[1:]
    assert tuple(layer.compute_output_shape((None,) + input_data.shape[1:])) == batch_shape
    symbolic = layer(keras.Input(input_data.shape[1:], dtype=str(input_data.dtype)))
    assert tuple(symbolic.shape) == batch_shape, symbolic.shape
    outputs = {"output": to_numpy(make()(input_data))}
    check_output(outputs["output"], expected_output_shape, "eager")
    if input_data.dtype == np.uint8:
        outputs["float_output"] = to_numpy(make()(_as_float(input_data)))
        check_output(outputs["float_output"], expected_output_shape, "float input")
        if uint8_atol is not None:
            np.testing.assert_allclose(outputs["output"], outputs["float_output"], atol=uint8_atol)
    if supports_unbatched:
        unbatched_shape = tuple(layer.compute_output_shape(input_data.shape[1:]))
        assert unbatched_shape == expected_output_shape[1:], unbatched_shape
        check_output(to_numpy(make()(input_data[0])), expected_output_shape[1:], "unbatched")

    for shape in bad_input_shapes:
        match = re.escape(bad_input_match.format(shape=shape))
        with pytest.raises(ValueError, match=match):
            make()(np.zeros(shape, "float32"))

    if random:
        _check_seeds(make, input_data, outputs["output"], init_kwargs["seed"], min_change)
    _check_config(layer_cls, make, input_data, expected_config)
    _check_saving(layer_cls, make, _as_float(input_data), saving_atol)
    _check_dtype_policies(make, input_data, keeps_float32)
    if is_tensorflow and run_tf_data_test:
        _check_tf_data(make, input_data, expected_output_shape, random, min_change, check_output)
    if is_tensorflow:
        _check_tf_function(
            make, input_data, expected_output_shape, random, min_change, graph_atol, check_output
        )
    return outputs


def _check_seeds(make, input_data, output, seed, min_change):
    """Equal seeds, equal outputs; another seed or a second call, other outputs."""
    np.testing.assert_array_equal(to_numpy(make()(input_data)), output)
    other = to_numpy(make(seed=seed + 1)(input_data))
    assert np.abs(output - other).max() > min_change, "seed + 1 gave the same outputs"
    layer = make()
    first, second = to_numpy(layer(input_data)), to_numpy(layer(input_data))
    assert np.abs(first - second).max() > min_change, "the seed state did not advance"


def _same(value, expected):
    if isinstance(expected, tuple):
        return tuple(value) == expected
    return value == expected


def _built_pair(make, layer_cls, input_data):
    """A fresh layer and its `from_config` clone, built, the clone holding its weights."""
    layer = make()
    clone = layer_cls.from_config(layer.get_config())
    layer.build(input_data.shape)
    clone.build(input_data.shape)
    clone.set_weights(layer.get_weights())
    return layer, clone


def _check_config(layer_cls, make, input_data, expected_config):
    """get_config holds the arguments; from_config and Keras serialization round-trip it
    and the clone computes what the original computes."""
    layer = make()
    config = layer.get_config()
    for key, value in (expected_config or {}).items():
        assert _same(config[key], value), (key, config[key], value)
    assert layer_cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, layer_cls) and restored.get_config() == config
    layer, clone = _built_pair(make, layer_cls, input_data)
    np.testing.assert_array_equal(to_numpy(clone(input_data)), to_numpy(layer(input_data)))


def _check_saving(layer_cls, make, input_data, atol):
    """A Sequential model holding the layer, saved to `.keras` and reloaded."""
    model = keras.Sequential([keras.Input(input_data.shape[1:]), make()])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0], layer_cls)
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    # Keras does not save seed-generator states: the reloaded layer starts from its seed,
    # as the original did, and computes the same outputs.
    got, expected = to_numpy(loaded(input_data)), to_numpy(model(input_data))
    if atol:
        np.testing.assert_allclose(got, expected, atol=atol)
    else:
        np.testing.assert_array_equal(got, expected)


def _check_dtype_policies(make, input_data, keeps_float32):
    reference = to_numpy(make()(input_data))
    previous = keras.config.dtype_policy()
    for policy in ("mixed_bfloat16", "bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            layer = make()
            out = layer(input_data)
        finally:
            keras.config.set_dtype_policy(previous)
        dtype = keras.backend.standardize_dtype(out.dtype)
        if keeps_float32:
            assert (layer.compute_dtype, dtype) == ("float32", "float32"), policy
            np.testing.assert_allclose(to_numpy(out), reference, atol=1e-6, err_msg=policy)
        else:
            assert (layer.compute_dtype, dtype) == ("bfloat16", "bfloat16"), policy
            variable_dtype = "float32" if policy == "mixed_bfloat16" else "bfloat16"
            for variable in layer.trainable_variables:
                assert keras.backend.standardize_dtype(variable.dtype) == variable_dtype


def _check_tf_data(make, input_data, expected_output_shape, random, min_change, check_output):
    """Mapped over single examples (a fresh draw each) and over batches of 4."""
    import tensorflow as tf

    layer = make()
    copies = np.repeat(input_data[:1], 4, axis=0)
    outs = [o.numpy() for o in tf.data.Dataset.from_tensor_slices(copies).map(layer)]
    for out in outs:
        check_output(out, expected_output_shape[1:], "tf.data, unbatched")
    if random:
        assert np.abs(outs[0] - outs[1]).max() > min_change, "tf.data: equal draws"
    batched = tf.data.Dataset.from_tensor_slices(input_data).batch(4).map(make())
    outs = [o.numpy() for o in batched]
    assert len(outs) == len(input_data) // 4
    for out in outs:
        check_output(out, (4,) + expected_output_shape[1:], "tf.data, batched")


def _check_tf_function(
    make, input_data, expected_output_shape, random, min_change, graph_atol, check_output
):
    """Traced with batch None (as Keras traces train steps): with XLA (state advancing
    inside, equal seeds equal views) and without (the graph equals eager, any batch)."""
    import tensorflow as tf

    spec = [tf.TensorSpec((None,) + input_data.shape[1:], tf.as_dtype(input_data.dtype))]

    # A random layer's draws depend on its seed only; a layer with weights is traced
    # and run eagerly as one instance, so that both read the same weights.
    shared = None if random else make()

    def traced(jit_compile):
        layer = make() if random else shared
        return tf.function(lambda x: layer(x), input_signature=spec, jit_compile=jit_compile)

    compiled = traced(jit_compile=True)
    a, b = compiled(input_data).numpy(), compiled(input_data).numpy()
    check_output(a, expected_output_shape, "XLA")
    if random:
        assert np.abs(a - b).max() > min_change, "XLA: the state did not advance"
        np.testing.assert_array_equal(traced(jit_compile=True)(input_data).numpy(), a)
    graph, eager = traced(jit_compile=False), (make() if random else shared)
    for batch in (input_data, input_data[:5]):
        np.testing.assert_allclose(graph(batch).numpy(), to_numpy(eager(batch)), atol=graph_atol)
