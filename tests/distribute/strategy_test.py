"""resolve_strategy's contract: always an object with `scope()`, nothing set globally
unless asked, and every helper that takes a strategy takes what it returns.

Device counts are fixed when TensorFlow (or JAX) initializes, so the two-device
and JAX cases run in fresh processes and print their findings as JSON.
"""

import json

import pytest

from tests.conftest import run_in_subprocess


def test_global_batch_must_split_evenly_and_one_device_gets_default_strategy():
    import tensorflow as tf

    from keras_simclr import distribute

    with pytest.raises(ValueError, match=r"2 replicas.*batch_size=7"):
        distribute.check_global_batch(7, 2)
    assert distribute.check_global_batch(8, 2) == 4
    strategy = distribute.resolve_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert distribute.replicas_of(strategy) == 1
    assert distribute.replicas_of(None) == 1
    # The default strategy's scope, and every helper, work as for any strategy.
    with strategy.scope():
        assert tf.distribute.get_strategy() is strategy
    assert distribute.check_global_batch(8, strategy) == 8
    assert distribute.same_on_every_worker(strategy, 5)
    assert distribute.resolve_strategy(set_global=True) is tf.distribute.get_strategy()


def test_one_device_counts_one_and_other_objects_are_refused():
    from keras_simclr import distribute

    one = distribute.OneDevice()
    assert distribute.replicas_of(one) == 1
    assert distribute.check_global_batch(7, one) == 7
    assert distribute.same_on_every_worker(one, 3)
    with one.scope():  # TensorFlow: nothing to lift
        pass
    with pytest.raises(TypeError, match="Received: strategy='two'"):
        distribute.replicas_of("two")


_TF_MIRRORED = """
import json, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_simclr import distribute

strategy = distribute.resolve_strategy(devices=["/cpu:0", "/cpu:1"])
try:
    distribute.check_global_batch(7, strategy)
    refused = None
except ValueError as error:
    refused = str(error)
with strategy.scope():
    inside = tf.distribute.get_strategy() is strategy
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
print(json.dumps({
    "kind": type(strategy).__name__,
    "replicas": distribute.replicas_of(strategy),
    "per_replica": distribute.check_global_batch(8, strategy),
    "refused": refused,
    "inside": inside,
    "outside_default": tf.distribute.get_strategy() is not strategy,
    "model_strategy": model.distribute_strategy is strategy,
    "same": distribute.same_on_every_worker(strategy, 3),
    "fixed_is_model": distribute.fix_symbolic_build(model) is model,
}))
"""


@pytest.mark.process
def test_tf_two_logical_cpus_give_a_mirrored_strategy_every_helper_takes():
    out = run_in_subprocess(_TF_MIRRORED, backend="tensorflow")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["kind"] == "MirroredStrategy", result
    assert result["replicas"] == 2 and result["per_replica"] == 4, result
    assert "2 replicas" in result["refused"], result
    assert result["inside"] and result["outside_default"] and result["model_strategy"], result
    assert result["same"] and result["fixed_is_model"], result


_JAX = """
import json, numpy as np, jax, keras
from keras_simclr import distribute

out = {"devices": len(jax.devices())}
strategy = distribute.resolve_strategy()
out["kind"] = type(strategy).__name__
out["global_after_resolve"] = repr(keras.distribution.distribution())
out["replicas"] = distribute.replicas_of(strategy)
out["per_replica"] = distribute.check_global_batch(8, strategy)
out["same"] = distribute.same_on_every_worker(strategy, 3)


class Seen(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.current = keras.distribution.distribution()


seen = Seen()
with strategy.scope():
    out["inside_is_result"] = keras.distribution.distribution() is (
        None if isinstance(strategy, distribute.OneDevice) else strategy)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), batch_size=8, verbose=0, callbacks=[seen])
out["fit_saw_result"] = seen.current is (
    None if isinstance(strategy, distribute.OneDevice) else strategy)
out["kernel_devices"] = len(model.layers[0].kernel.value.sharding.device_set)
out["global_after_scope"] = repr(keras.distribution.distribution())
out["fixed_is_model"] = distribute.fix_symbolic_build(model) is model

# An explicit global distribution is lifted inside OneDevice's scope and by
# no_distribution, and restored after.
everywhere = keras.distribution.DataParallel(devices=jax.devices())
keras.distribution.set_distribution(everywhere)
with distribute.OneDevice().scope():
    out["lifted"] = keras.distribution.distribution() is None
with distribute.no_distribution():
    out["lifted_too"] = keras.distribution.distribution() is None
out["restored"] = keras.distribution.distribution() is everywhere
keras.distribution.set_distribution(None)

# set_global=True: the result (None for OneDevice) becomes Keras's global one.
keras.distribution.set_distribution(everywhere)
again = distribute.resolve_strategy(set_global=True)
out["global_after_set_global"] = keras.distribution.distribution() is (
    None if isinstance(again, distribute.OneDevice) else again)
print(json.dumps(out))
"""


@pytest.mark.parametrize("devices", [1, 2])
@pytest.mark.process
def test_jax_result_has_a_scope_and_sets_nothing_unless_asked(devices):
    out = run_in_subprocess(
        _JAX,
        backend="jax",
        extra_env={"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"},
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["devices"] == devices, result
    assert result["kind"] == ("OneDevice" if devices == 1 else "DataParallel"), result
    assert result["global_after_resolve"] == "None", result
    assert result["replicas"] == devices and result["per_replica"] == 8 // devices, result
    assert result["same"] and result["fixed_is_model"], result
    assert result["inside_is_result"] and result["fit_saw_result"], result
    assert result["kernel_devices"] == devices, result
    assert result["global_after_scope"] == "None", result
    assert result["lifted"] and result["lifted_too"] and result["restored"], result
    assert result["global_after_set_global"], result
