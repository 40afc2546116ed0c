"""LARS steps against NumPy unrolled from DESIGN.md's update rule."""

import json

import keras
import numpy as np
import pytest

from keras_simclr.optimizers import LARS
from tests.conftest import run_in_subprocess


def numpy_lars(
    weights,
    grads_per_step,
    lrs,
    momentum=0.9,
    weight_decay=0.0,
    eeta=0.001,
    nesterov=False,
    decay=None,
    adapt=None,
):
    """DESIGN.md's LARS rule, unrolled in float64.

    weights: dict name -> array. grads_per_step: list of dicts name -> grad.
    lrs: learning rate of each step. decay / adapt: dict name -> bool
    (default True for every variable).
    """
    w = {k: np.array(v, "float64") for k, v in weights.items()}
    vel = {k: np.zeros_like(v) for k, v in w.items()}
    decay = decay or {k: True for k in w}
    adapt = adapt or {k: True for k in w}
    for lr, grads in zip(lrs, grads_per_step):
        for k in w:
            g = np.array(grads[k], "float64")
            if decay[k]:
                g = g + weight_decay * w[k]
            w_norm, g_norm = np.linalg.norm(w[k]), np.linalg.norm(g)
            if adapt[k] and w_norm > 0 and g_norm > 0:
                trust = eeta * w_norm / g_norm
            else:
                trust = 1.0
            vel[k] = momentum * vel[k] + lr * trust * g
            if nesterov:
                w[k] = w[k] - (momentum * vel[k] + lr * trust * g)
            else:
                w[k] = w[k] - vel[k]
    return w


def _problem(seed=0, steps=3):
    rng = np.random.default_rng(seed)
    weights = {
        "kernel": rng.normal(size=(4, 3)).astype("float32"),
        "bias": rng.normal(size=(3,)).astype("float32"),
    }
    grads = [
        {k: rng.normal(size=v.shape).astype("float32") for k, v in weights.items()}
        for _ in range(steps)
    ]
    return weights, grads


def _run_keras(optimizer, weights, grads_per_step):
    variables = {k: keras.Variable(v, name=k) for k, v in weights.items()}
    assert variables["kernel"].path == "kernel"  # a bare Variable's path is its name
    for grads in grads_per_step:
        optimizer.apply_gradients(
            [(keras.ops.convert_to_tensor(grads[k]), variables[k]) for k in weights]
        )
    return {k: keras.ops.convert_to_numpy(v) for k, v in variables.items()}


def _assert_weights(got, expected, rtol=1e-5, atol=1e-6):
    assert set(got) == set(expected)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=rtol, atol=atol, err_msg=k)


# Each case: LARS kwargs, and the decay / adaptation flags the rule gets for
# (kernel, bias). No exclusions -> both variables adapted and decayed.
CASES = {
    "plain": (
        dict(learning_rate=0.5, momentum=0.9, exclude_from_weight_decay=[]),
        dict(decay={"kernel": True, "bias": True}, adapt={"kernel": True, "bias": True}),
    ),
    "weight_decay": (
        dict(learning_rate=0.5, weight_decay=0.1, exclude_from_weight_decay=[]),
        dict(decay={"kernel": True, "bias": True}, adapt={"kernel": True, "bias": True}),
    ),
    "nesterov": (
        dict(learning_rate=0.5, weight_decay=0.05, nesterov=True, exclude_from_weight_decay=[]),
        dict(decay={"kernel": True, "bias": True}, adapt={"kernel": True, "bias": True}),
    ),
    "eeta_and_momentum": (
        dict(
            learning_rate=2.0,
            momentum=0.5,
            eeta=0.01,
            weight_decay=0.01,
            exclude_from_weight_decay=[],
        ),
        dict(decay={"kernel": True, "bias": True}, adapt={"kernel": True, "bias": True}),
    ),
    # Default exclusions: "bias" gets neither decay nor adaptation.
    "default_exclusions": (
        dict(learning_rate=0.5, weight_decay=0.1),
        dict(decay={"kernel": True, "bias": False}, adapt={"kernel": True, "bias": False}),
    ),
    "excluded_from_decay_only": (
        dict(
            learning_rate=0.5,
            weight_decay=0.1,
            exclude_from_weight_decay=["bias"],
            exclude_from_layer_adaptation=[],
        ),
        dict(decay={"kernel": True, "bias": False}, adapt={"kernel": True, "bias": True}),
    ),
    "excluded_from_adaptation_only": (
        dict(
            learning_rate=0.5,
            weight_decay=0.1,
            exclude_from_weight_decay=[],
            exclude_from_layer_adaptation=["bias"],
        ),
        dict(decay={"kernel": True, "bias": True}, adapt={"kernel": True, "bias": False}),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_three_steps_match_numpy(case):
    kwargs, flags = CASES[case]
    weights, grads = _problem(seed=1)
    expected = numpy_lars(
        weights,
        grads,
        [kwargs["learning_rate"]] * 3,
        momentum=kwargs.get("momentum", 0.9),
        weight_decay=kwargs.get("weight_decay", 0.0),
        eeta=kwargs.get("eeta", 0.001),
        nesterov=kwargs.get("nesterov", False),
        **flags,
    )
    got = _run_keras(LARS(**kwargs), weights, grads)
    _assert_weights(got, expected)
    # The step moved something (not a vacuous comparison).
    assert not np.allclose(got["kernel"], weights["kernel"])
    assert not np.allclose(got["bias"], weights["bias"])


def test_first_step_by_hand():
    # w = [3, 4] (norm 5), g = [0, 1] (norm 1), lr 1, eeta 0.1: trust 0.5,
    # v = 0.5 * g, w = [3, 3.5]. Step 2, same g: trust = 0.1 * ||[3, 3.5]||,
    # v = 0.9 * v + trust * g.
    w = keras.Variable(np.array([3.0, 4.0], "float32"), name="kernel")
    opt = LARS(learning_rate=1.0, momentum=0.9, eeta=0.1)
    g = np.array([0.0, 1.0], "float32")
    opt.apply_gradients([(g, w)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), [3.0, 3.5], rtol=1e-6)
    opt.apply_gradients([(g, w)])
    trust2 = 0.1 * np.hypot(3.0, 3.5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(w), [3.0, 3.5 - (0.9 * 0.5 + trust2)], rtol=1e-6
    )


def test_exclusions_match_the_variable_path_not_only_its_name():
    # A pattern naming a layer ("head") matches "head/kernel" by its path;
    # the variable's own name is just "kernel".
    rng = np.random.default_rng(10)
    w0 = rng.normal(size=(3, 2)).astype("float32")
    grads = [{"kernel": rng.normal(size=(3, 2)).astype("float32")} for _ in range(3)]
    layer = keras.layers.Dense(2, name="head")
    layer.build((None, 3))
    layer.kernel.assign(w0)
    assert layer.kernel.path == "head/kernel" and layer.kernel.name == "kernel"
    opt = LARS(0.5, weight_decay=0.1, exclude_from_weight_decay=["head"])
    for g in grads:
        opt.apply_gradients([(g["kernel"], layer.kernel)])
    expected = numpy_lars(
        {"kernel": w0},
        grads,
        [0.5] * 3,
        weight_decay=0.1,
        decay={"kernel": False},
        adapt={"kernel": False},
    )
    _assert_weights({"kernel": keras.ops.convert_to_numpy(layer.kernel)}, expected)


def test_base_decoupled_weight_decay_not_applied():
    # With weight_decay > 0 the result is exactly the rule (decay inside the
    # gradient); a second, decoupled `w -= lr * wd * w` would break it.
    opt = LARS(learning_rate=0.5, weight_decay=0.3, exclude_from_weight_decay=[])
    assert opt.weight_decay is None
    weights, grads = _problem(seed=2)
    expected = numpy_lars(weights, grads, [0.5] * 3, weight_decay=0.3)
    got = _run_keras(opt, weights, grads)
    _assert_weights(got, expected)
    # ...and differs from the rule plus decoupled decay.
    w0 = {"kernel": weights["kernel"]}
    rule_one_step = numpy_lars(w0, [grads[0]], [0.5], weight_decay=0.3)["kernel"]
    double = rule_one_step - 0.5 * 0.3 * w0["kernel"]
    v = keras.Variable(w0["kernel"], name="kernel")
    LARS(learning_rate=0.5, weight_decay=0.3).apply_gradients([(grads[0]["kernel"], v)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(v), rule_one_step, rtol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(v), double, rtol=1e-5)


def test_zero_weight_gets_trust_one():
    # ||w|| = 0 at step 1: trust 1, so the step is plain SGD-momentum
    # (w = -lr * g); from step 2 on ||w|| > 0 and the trust ratio applies.
    weights = {"kernel": np.zeros((3, 2), "float32")}
    rng = np.random.default_rng(3)
    grads = [{"kernel": rng.normal(size=(3, 2)).astype("float32")} for _ in range(3)]
    opt = LARS(learning_rate=0.1, weight_decay=0.1)
    variable = keras.Variable(weights["kernel"], name="kernel")
    opt.apply_gradients([(grads[0]["kernel"], variable)])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(variable), -0.1 * grads[0]["kernel"], rtol=1e-6
    )
    for g in grads[1:]:
        opt.apply_gradients([(g["kernel"], variable)])
    expected = numpy_lars(weights, grads, [0.1] * 3, weight_decay=0.1)
    _assert_weights({"kernel": keras.ops.convert_to_numpy(variable)}, expected)


def test_zero_gradient_gets_trust_one():
    # ||g|| = 0 at step 2 (no decay): trust 1, v = momentum * v, no nan.
    rng = np.random.default_rng(4)
    weights = {"kernel": rng.normal(size=(5,)).astype("float32")}
    grads = [
        {"kernel": rng.normal(size=(5,)).astype("float32")},
        {"kernel": np.zeros((5,), "float32")},
        {"kernel": rng.normal(size=(5,)).astype("float32")},
    ]
    expected = numpy_lars(weights, grads, [0.3] * 3)
    opt = LARS(learning_rate=0.3)
    variable = keras.Variable(weights["kernel"], name="kernel")
    for g in grads:
        opt.apply_gradients([(g["kernel"], variable)])
    got = keras.ops.convert_to_numpy(variable)
    assert np.all(np.isfinite(got))
    _assert_weights({"kernel": got}, expected)


def test_cosine_decay_with_warmup_schedule():
    schedule = keras.optimizers.schedules.CosineDecay(
        0.1, decay_steps=10, warmup_target=0.8, warmup_steps=2
    )
    # The step-t update uses schedule(t), t = 0, 1, 2 (iterations before it):
    # linear warmup 0.1 -> 0.8 over 2 steps, then cosine decay from 0.8.
    lrs = [float(schedule(t)) for t in range(4)]
    np.testing.assert_allclose(lrs[:3], [0.1, 0.45, 0.8], rtol=1e-6)
    np.testing.assert_allclose(lrs[3], 0.8 * 0.5 * (1 + np.cos(np.pi * 1 / 10)), rtol=1e-6)
    weights, grads = _problem(seed=5, steps=4)
    expected = numpy_lars(weights, grads, lrs, weight_decay=0.01)
    opt = LARS(schedule, weight_decay=0.01, exclude_from_weight_decay=[])
    got = _run_keras(opt, weights, grads)
    _assert_weights(got, expected)
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 4
    # A constant lr equal to the first step's gives a different result.
    constant = numpy_lars(weights, grads, [0.1] * 4, weight_decay=0.01)
    assert not np.allclose(constant["kernel"], expected["kernel"], rtol=1e-4)


def test_config_round_trip():
    opt = LARS(
        learning_rate=0.2,
        momentum=0.8,
        weight_decay=0.05,
        eeta=0.002,
        nesterov=True,
        exclude_from_weight_decay=["bn", "bias"],
        exclude_from_layer_adaptation=["bias"],
        name="my_lars",
        clipnorm=1.0,
    )
    config = opt.get_config()
    restored = LARS.from_config(config)
    assert restored.get_config() == config and restored.name == "my_lars"
    # LARS decays inside its rule; the base class's decoupled decay stays off.
    assert restored.weight_decay is None
    # Every option survives the round trip: the restored optimizer steps as
    # the original did, and each option set to another value changes the
    # steps (so an option lost on the way would show).
    weights, grads = _problem(seed=6)
    expected = _run_keras(opt, weights, grads)
    _assert_weights(_run_keras(restored, weights, grads), expected, rtol=0, atol=0)
    others = dict(
        momentum=0.9,
        weight_decay=0.0,
        eeta=0.001,
        nesterov=False,
        exclude_from_weight_decay=[],
        exclude_from_layer_adaptation=[],
        clipnorm=None,
    )
    for option, value in others.items():
        changed = _run_keras(LARS.from_config({**config, option: value}), weights, grads)
        assert any(not np.allclose(changed[k], expected[k], rtol=1e-4) for k in expected), option

    # Defaults: adaptation exclusions follow the decay exclusions.
    defaults = LARS.from_config(LARS(exclude_from_weight_decay=["x"]).get_config())
    assert defaults.layer_adaptation_exclusions == ["x"]
    assert LARS().weight_decay_exclusions == [
        "batch_normalization",
        "gamma",
        "beta",
        "bias",
    ]

    # Through Keras serialization, with a schedule.
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=100, warmup_target=0.3, warmup_steps=10
    )
    opt = LARS(schedule, weight_decay=1e-6, exclude_from_layer_adaptation=["gamma"])
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert isinstance(clone, LARS)
    assert isinstance(clone._learning_rate, keras.optimizers.schedules.CosineDecay)
    assert clone._learning_rate.get_config() == schedule.get_config()
    assert clone.lars_weight_decay == 1e-6
    assert clone.layer_adaptation_exclusions == ["gamma"]

    # The restored optimizer steps identically.
    weights, grads = _problem(seed=6)
    a = LARS(0.3, weight_decay=0.1, nesterov=True, exclude_from_weight_decay=["bias"])
    b = LARS.from_config(a.get_config())
    _assert_weights(_run_keras(b, weights, grads), _run_keras(a, weights, grads), rtol=0, atol=0)


def test_three_steps_unrolled_by_hand():
    # w0 = [3, 4] (||w0|| = 5), g = [0.6, 0.8] (unit norm) at every step,
    # lr 1, momentum 0.5, eeta 0.1, weight decay 0. trust_t = 0.1 * ||w_t||,
    # and every update is along g, so ||w_t|| = 5 - (total step so far).
    g = np.array([0.6, 0.8])
    # Heavy ball: v1 = 0.5 g -> w1 = w0 - 0.5 g (norm 4.5)
    #             v2 = 0.5 * 0.5 g + 0.45 g = 0.7 g -> w2 norm 3.8
    #             v3 = 0.35 g + 0.38 g = 0.73 g -> w3 norm 3.07
    plain = np.array([3.0, 4.0]) - (0.5 + 0.7 + 0.73) * g
    # Nesterov: step_t = 0.5 v_t + trust_t g.
    #   v1 = 0.5 g, step 0.25 + 0.5 = 0.75 -> norm 4.25
    #   v2 = 0.25 g + 0.425 g = 0.675 g, step 0.3375 + 0.425 = 0.7625 -> 3.4875
    #   v3 = 0.3375 g + 0.34875 g = 0.68625 g, step 0.343125 + 0.34875
    nesterov = np.array([3.0, 4.0]) - (0.75 + 0.7625 + 0.691875) * g
    for use_nesterov, expected in ((False, plain), (True, nesterov)):
        w = keras.Variable(np.array([3.0, 4.0], "float32"), name="kernel")
        opt = LARS(1.0, momentum=0.5, eeta=0.1, nesterov=use_nesterov)
        for _ in range(3):
            opt.apply_gradients([(g.astype("float32"), w)])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-6)
        # The NumPy oracle used by the other tests agrees.
        oracle = numpy_lars(
            {"w": [3.0, 4.0]},
            [{"w": g}] * 3,
            [1.0] * 3,
            momentum=0.5,
            eeta=0.1,
            nesterov=use_nesterov,
        )
        np.testing.assert_allclose(oracle["w"], expected, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(momentum=1.0),
        dict(momentum=-0.1),
        dict(weight_decay=-1e-4),
        dict(weight_decay=None),
        dict(weight_decay=float("nan")),
        dict(eeta=-0.001),
        dict(eeta=float("inf")),
        dict(exclude_from_weight_decay=[1, 2]),
        dict(exclude_from_layer_adaptation=3),
    ],
)
def test_rejects_bad_arguments(kwargs):
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=f"Received: {name}="):
        LARS(**kwargs)


@pytest.mark.parametrize("learning_rate", [-1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_refuses_a_negative_or_non_finite_learning_rate(learning_rate):
    with pytest.raises(ValueError, match=f"Received: learning_rate={learning_rate!r}"):
        LARS(learning_rate=learning_rate)


def test_accepts_a_zero_learning_rate_and_schedules():
    assert float(keras.ops.convert_to_numpy(LARS(learning_rate=0.0).learning_rate)) == 0.0
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=10, warmup_target=0.3, warmup_steps=2
    )
    assert LARS(learning_rate=schedule)._learning_rate is schedule
    LARS(learning_rate=lambda: 0.1)  # a callable is only checked when called


def test_a_single_string_is_one_pattern():
    # Not list("bias") = ["b", "i", "a", "s"], which would match nearly all.
    opt = LARS(exclude_from_weight_decay="bias")
    assert opt.weight_decay_exclusions == ["bias"]
    assert opt.layer_adaptation_exclusions == ["bias"]


def test_exclude_from_weight_decay_method():
    # Keras's own API for decay exclusions adds to the constructor's, before
    # build(), and affects decay only (adaptation keeps its exclusions).
    weights, grads = _problem(seed=11)
    weights["other"] = weights["kernel"][:2] * 2.0
    for g in grads:
        g["other"] = g["kernel"][:2] * -1.0
    opt = LARS(
        0.5, weight_decay=0.2, exclude_from_weight_decay=[], exclude_from_layer_adaptation=["bias"]
    )
    variables = {k: keras.Variable(v, name=k) for k, v in weights.items()}
    opt.exclude_from_weight_decay(var_list=[variables["other"]], var_names=["kern"])
    assert opt.get_config()["exclude_from_weight_decay"] == ["kern"]
    for g in grads:
        opt.apply_gradients([(g[k], variables[k]) for k in weights])
    expected = numpy_lars(
        weights,
        grads,
        [0.5] * 3,
        weight_decay=0.2,
        decay={"kernel": False, "bias": True, "other": False},
        adapt={"kernel": True, "bias": False, "other": True},
    )
    _assert_weights({k: keras.ops.convert_to_numpy(v) for k, v in variables.items()}, expected)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["bias"])


def _dense_bn_model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(1),
        ]
    )
    return model


def test_fit_batchnorm_and_bias_follow_sgd_momentum():
    # LARS with eeta=0 freezes the adapted variables (trust 0: both dense
    # kernels), while BN gamma/beta and the dense biases are excluded by
    # default: trust 1 and no decay, i.e. plain SGD with momentum 0.9. So
    # 3 `fit` steps with LARS equal 3 steps of keras SGD(momentum=0.9)
    # applied to those variables alone.
    import tensorflow as tf

    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    lr = 0.05

    model = _dense_bn_model(0)
    initial = [keras.ops.convert_to_numpy(w) for w in model.weights]
    model.compile(optimizer=LARS(lr, momentum=0.9, weight_decay=0.5, eeta=0.0), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 3

    reference = _dense_bn_model(0)
    for w, value in zip(reference.weights, initial):
        w.assign(value)
    excluded = [
        v
        for v in reference.trainable_variables
        if any(s in v.path for s in ("bias", "gamma", "beta"))
    ]
    assert len(excluded) == 4  # 2 dense biases, gamma, beta
    sgd = keras.optimizers.SGD(lr, momentum=0.9)
    loss_fn = keras.losses.MeanSquaredError()
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, reference(x, training=True))
        sgd.apply_gradients(zip(tape.gradient(loss, excluded), excluded))

    trainable_initial = [w for w, v in zip(initial, model.weights) if v.trainable]
    for got, expected, init in zip(
        model.trainable_variables, reference.trainable_variables, trainable_initial
    ):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got),
            keras.ops.convert_to_numpy(expected),
            rtol=1e-5,
            atol=1e-6,
            err_msg=got.path,
        )
        value = keras.ops.convert_to_numpy(got)
        if "kernel" in got.path:  # trust 0: frozen, decay included
            np.testing.assert_array_equal(value, init, err_msg=got.path)
        elif got is not model.layers[0].bias:
            # (The bias before BatchNorm gets a ~0 gradient: BN removes it.)
            assert not np.allclose(value, init), got.path


def test_fit_steps_match_numpy_for_every_variable():
    # 3 `fit` steps of a Dense + BatchNormalization model against the NumPy
    # rule fed with the gradients of a replica model: kernels adapted and
    # decayed; BN gamma/beta and dense biases (default exclusions) with
    # trust 1 and no decay.
    import tensorflow as tf

    rng = np.random.default_rng(8)
    x = rng.normal(size=(8, 5)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    lr, wd, eeta = 0.2, 0.01, 0.02
    model, reference = _dense_bn_model(1), _dense_bn_model(1)
    for a, b in zip(model.weights, reference.weights):
        b.assign(a)
    model.compile(optimizer=LARS(lr, weight_decay=wd, eeta=eeta), loss="mse")
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)

    names = [v.path for v in reference.trainable_variables]
    excluded = {k: any(s in k for s in ("bias", "gamma", "beta")) for k in names}
    assert sum(excluded.values()) == 4 and len(names) == 6
    w = {
        k: keras.ops.convert_to_numpy(v).astype("float64")
        for k, v in zip(names, reference.trainable_variables)
    }
    vel = {k: np.zeros_like(v) for k, v in w.items()}
    loss_fn = keras.losses.MeanSquaredError()
    for _ in range(3):
        for k, v in zip(names, reference.trainable_variables):
            v.assign(w[k].astype("float32"))
        with tf.GradientTape() as tape:
            loss = loss_fn(y, reference(x, training=True))
        grads = tape.gradient(loss, reference.trainable_variables)
        for k, g in zip(names, grads):
            g = g.numpy().astype("float64")
            if excluded[k]:
                trust = 1.0
            else:
                g = g + wd * w[k]
                trust = eeta * np.linalg.norm(w[k]) / np.linalg.norm(g)
                assert 1e-3 < trust < 1.0  # the ratio really scales the step
            vel[k] = 0.9 * vel[k] + lr * trust * g
            w[k] = w[k] - vel[k]
    for k, v in zip(names, model.trainable_variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(v), w[k], rtol=1e-4, atol=1e-6, err_msg=k
        )


_KWARGS = dict(learning_rate=0.5, momentum=0.9, weight_decay=0.1, eeta=0.01)
_STEPS = 2


def _subprocess_problem():
    """The payload for a subprocess, and the NumPy result for each nesterov."""
    weights, grads = _problem(seed=9, steps=_STEPS)
    expected = {
        nesterov: numpy_lars(
            weights,
            grads,
            [_KWARGS["learning_rate"]] * _STEPS,
            momentum=_KWARGS["momentum"],
            weight_decay=_KWARGS["weight_decay"],
            eeta=_KWARGS["eeta"],
            nesterov=nesterov,
            decay={"kernel": True, "bias": False},
            adapt={"kernel": True, "bias": False},
        )
        for nesterov in (False, True)
    }
    payload = json.dumps(
        {
            "weights": {k: v.tolist() for k, v in weights.items()},
            "grads": [{k: v.tolist() for k, v in g.items()} for g in grads],
            "kwargs": _KWARGS,
        }
    )
    return payload, expected


_MIRRORED = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_simclr.optimizers import LARS
p = json.loads({payload!r})
names = ["kernel", "bias"]
weights = {{k: np.array(v, "float32") for k, v in p["weights"].items()}}
grads = [{{k: np.array(v, "float32") for k, v in g.items()}} for g in p["grads"]]

def run(strategy, nesterov):
    # A layer's variables: paths "head/kernel", "head/bias".
    with strategy.scope():
        layer = keras.layers.Dense(3, name="head")
        layer.build((None, 4))
        layer.kernel.assign(weights["kernel"])
        layer.bias.assign(weights["bias"])
        variables = [layer.kernel, layer.bias]
        opt = LARS(nesterov=nesterov, **p["kwargs"])
        opt.build(variables)

    @tf.function
    def step(g_kernel, g_bias):
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            # Replica r holds (r + 1) / 3 of the gradient: the all-reduce
            # sum gives the full gradient.
            share = tf.cast(ctx.replica_id_in_sync_group + 1, tf.float32) / 3.0
            if ctx.num_replicas_in_sync == 1:
                share = tf.constant(1.0)
            opt.apply_gradients(
                [(g_kernel * share, variables[0]), (g_bias * share, variables[1])])
        strategy.run(replica_fn)

    for g in grads:
        step(tf.constant(g["kernel"]), tf.constant(g["bias"]))
    return {{k: keras.ops.convert_to_numpy(v).tolist() for k, v in zip(names, variables)}}

def fit(strategy):
    # model.fit: Keras splits the batch of 16 into 8 per replica.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(4, activation="tanh", name="hidden"),
            keras.layers.Dense(1, name="head"),
        ], name="model")
        model.compile(optimizer=LARS(0.3, weight_decay=0.05, eeta=0.02,
                                     exclude_from_weight_decay=["head/"]),
                      loss="mse")
    initial = [np.array(v.numpy()).tolist() for v in model.trainable_variables]
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return {{"paths": [v.path for v in model.trainable_variables],
             "initial": initial,
             "final": [np.array(v.numpy()).tolist() for v in model.trainable_variables]}}

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
single = tf.distribute.get_strategy()
out = {{"fit_mirrored": fit(mirrored), "fit_single": fit(single)}}
for nesterov in (False, True):
    out[f"mirrored_{{nesterov}}"] = run(mirrored, nesterov)
    out[f"single_{{nesterov}}"] = run(single, nesterov)
print(json.dumps(out))
"""


@pytest.mark.process
def test_mirrored_strategy_equals_single_device():
    # The DESIGN pitfall: under MirroredStrategy, update_step gets each
    # replica's raw tf.Variable; exclusions are looked up by variable index.
    payload, expected = _subprocess_problem()
    out = run_in_subprocess(_MIRRORED.format(payload=payload), backend="tensorflow", timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    for nesterov in (False, True):
        mirrored = {k: np.array(v) for k, v in result[f"mirrored_{nesterov}"].items()}
        single = {k: np.array(v) for k, v in result[f"single_{nesterov}"].items()}
        _assert_weights(mirrored, single, rtol=1e-6, atol=1e-7)
        _assert_weights(single, expected[nesterov])
        _assert_weights(mirrored, expected[nesterov])

    fit_m, fit_s = result["fit_mirrored"], result["fit_single"]
    assert (
        fit_m["paths"]
        == fit_s["paths"]
        == [
            "model/hidden/kernel",
            "model/hidden/bias",
            "model/head/kernel",
            "model/head/bias",
        ]
    )
    for path, init, got_m, got_s in zip(
        fit_s["paths"], fit_s["initial"], fit_m["final"], fit_s["final"]
    ):
        np.testing.assert_allclose(got_m, got_s, rtol=1e-5, atol=1e-6, err_msg=path)
        assert not np.allclose(got_s, init), path


_JAX = """
import json, numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_simclr.optimizers import LARS
p = json.loads({payload!r})
names = ["kernel", "bias"]
out = {{}}
for nesterov in (False, True):
    variables = [keras.Variable(np.array(p["weights"][k], "float32"), name=k)
                 for k in names]
    opt = LARS(nesterov=nesterov, **p["kwargs"])
    for g in p["grads"]:
        opt.apply_gradients(
            [(np.array(g[k], "float32"), v) for k, v in zip(names, variables)])
    out[str(nesterov)] = {{k: np.asarray(v.value).tolist()
                          for k, v in zip(names, variables)}}

# model.fit on JAX goes through the jitted stateless_apply: one step of a
# Dense model, kernel adapted, bias excluded (trust 1, plain SGD step).
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 3)).astype("float32")
y = rng.normal(size=(8, 2)).astype("float32")
keras.utils.set_random_seed(2)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile(optimizer=LARS(nesterov=True, **p["kwargs"]), loss="mse")
out["fit_initial"] = [np.asarray(v.value).tolist() for v in model.trainable_variables]
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
out["fit_final"] = [np.asarray(v.value).tolist() for v in model.trainable_variables]
out["fit_x"], out["fit_y"] = x.tolist(), y.tolist()
print(json.dumps(out))
"""


@pytest.mark.process
def test_jax_backend_matches_numpy():
    payload, expected = _subprocess_problem()
    out = run_in_subprocess(_JAX.format(payload=payload), backend="jax", timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    for nesterov in (False, True):
        _assert_weights(
            {k: np.array(v) for k, v in result[str(nesterov)].items()},
            expected[nesterov],
        )

    # The fit step against the closed form: MSE gradients of a linear model.
    kernel, bias = (np.array(v, "float64") for v in result["fit_initial"])
    x, y = np.array(result["fit_x"]), np.array(result["fit_y"])
    residual = 2.0 * (x @ kernel + bias - y) / y.size
    grads = {"kernel": x.T @ residual, "bias": residual.sum(axis=0)}
    step = numpy_lars(
        {"kernel": kernel, "bias": bias},
        [grads],
        [_KWARGS["learning_rate"]],
        momentum=_KWARGS["momentum"],
        weight_decay=_KWARGS["weight_decay"],
        eeta=_KWARGS["eeta"],
        nesterov=True,
        decay={"kernel": True, "bias": False},
        adapt={"kernel": True, "bias": False},
    )
    _assert_weights(
        {"kernel": np.array(result["fit_final"][0]), "bias": np.array(result["fit_final"][1])},
        step,
    )
