"""Distributed training equals single-device training on the same global batch.

Logical devices must be configured before TensorFlow (or JAX) initializes, so
each scenario runs in a fresh process and prints its numbers as JSON.
"""

import json

import numpy as np
import pytest

from tests.conftest import run_in_subprocess

_TF_PRELUDE = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * {replicas}
)
import keras
import keras_simclr as ks
devices = ["/cpu:%d" % i for i in range({replicas})]
"""

_TF_LOSS_AND_GRADIENTS = (
    _TF_PRELUDE
    + """
from keras_simclr.losses import nt_xent_loss
from keras_simclr.distribute import cross_replica_concat
rng = np.random.default_rng(0)
N, d = 8, 16
z_a = tf.constant(rng.normal(size=(N, d)).astype("float32"))
z_b = tf.constant(rng.normal(size=(N, d)).astype("float32"))

with tf.GradientTape() as tape:
    tape.watch([z_a, z_b])
    single = nt_xent_loss(z_a, z_b, temperature=0.2)
single_grads = tape.gradient(single, [z_a, z_b])

strategy = ks.distribute.resolve_strategy(devices=devices)
assert strategy.num_replicas_in_sync == {replicas}
n = N // {replicas}

def replica_fn():
    ctx = tf.distribute.get_replica_context()
    i = ctx.replica_id_in_sync_group
    a = tf.identity(z_a[i * n:(i + 1) * n])
    b = tf.identity(z_b[i * n:(i + 1) * n])
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        keys_a, offset = cross_replica_concat(a)
        keys_b, _ = cross_replica_concat(b)
        loss = nt_xent_loss(a, b, temperature=0.2, keys=(keys_a, keys_b), offset=offset)
        # Keras scales each replica's loss by 1/R and sums gradients.
        scaled = loss / {replicas}
    ga, gb = tape.gradient(scaled, [a, b])
    return loss, ga, gb

losses, ga, gb = tf.function(lambda: strategy.run(replica_fn))()
local = strategy.experimental_local_results
print(json.dumps({{
    "single": float(single),
    "replica_losses": [float(v) for v in local(losses)],
    "single_grad_a": single_grads[0].numpy().tolist(),
    "single_grad_b": single_grads[1].numpy().tolist(),
    "grad_a": np.concatenate([g.numpy() for g in local(ga)]).tolist(),
    "grad_b": np.concatenate([g.numpy() for g in local(gb)]).tolist(),
}}))
"""
)


@pytest.mark.parametrize("replicas", [2, 4])
@pytest.mark.process
def test_tf_loss_and_gradients_on_replicas_equal_single_device(replicas):
    out = run_in_subprocess(_TF_LOSS_AND_GRADIENTS.format(replicas=replicas), backend="tensorflow")
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["replica_losses"]) == replicas
    # Each replica's anchors see all 2N - 2 negatives: the mean of the
    # replica losses is the single-device loss.
    np.testing.assert_allclose(np.mean(result["replica_losses"]), result["single"], rtol=1e-5)
    # Gradients reach every replica's own slice through the all-gather.
    np.testing.assert_allclose(result["grad_a"], result["single_grad_a"], atol=1e-5)
    np.testing.assert_allclose(result["grad_b"], result["single_grad_b"], atol=1e-5)
    assert np.abs(result["single_grad_a"]).max() > 1e-3


_TF_FIT_STEP = (
    _TF_PRELUDE
    + """
def build(sync):
    keras.utils.set_random_seed(7)
    model = ks.models.ContrastiveModel(
        encoder=ks.models.ResNet(18, width_multiplier=0.125, cifar_stem=True,
                                 input_shape=(16, 16, 3), sync_batchnorm=sync),
        projection_head=ks.models.ProjectionHead(output_dim=16, sync_batchnorm=sync),
        augmenter=None, temperature=0.2)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    return model

rng = np.random.default_rng(1)
view_a = rng.uniform(size=(8, 16, 16, 3)).astype("float32")
view_b = rng.uniform(size=(8, 16, 16, 3)).astype("float32")

def fit_once(model):
    history = model.fit(x=(view_a, view_b), batch_size=8, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], [np.array(w) for w in model.weights]

sync = {sync}
single = build(sync)
single(( view_a[:2], view_b[:2]))
initial = [np.array(w) for w in single.weights]
single_loss, single_weights = fit_once(single)

strategy = ks.distribute.resolve_strategy(devices=devices)
with strategy.scope():
    dist = build(sync)
    dist((view_a[:2], view_b[:2]))
    dist.set_weights(initial)
dist_loss, dist_weights = fit_once(dist)
changed = max(float(np.abs(a - b).max()) for a, b in zip(single_weights, initial))
diff = max(float(np.abs(a - b).max()) for a, b in zip(single_weights, dist_weights))
names = [w.path for w in single.weights]
gaps = [float(np.abs(a - b).max()) for a, b in zip(single_weights, dist_weights)]
worst = names[int(np.argmax(gaps))]
print(json.dumps({{"single_loss": single_loss, "dist_loss": dist_loss, "changed": changed,
                   "diff": diff, "worst": worst}}))
"""
)


def _fit_step(sync):
    out = run_in_subprocess(_TF_FIT_STEP.format(replicas=2, sync=sync), backend="tensorflow")
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.process
def test_tf_fit_step_with_synchronized_batchnorm_matches_single_device():
    result = _fit_step(sync=True)
    assert result["changed"] > 1e-3  # the step really moved the weights
    np.testing.assert_allclose(result["dist_loss"], result["single_loss"], rtol=1e-5)
    # Weights moved by up to ~3 in this step; the two runs agree to float32
    # round-off (about 2e-5 absolute, 6e-6 relative, here).
    assert result["diff"] < 1e-4, result


@pytest.mark.process
def test_tf_fit_step_with_per_replica_batchnorm_differs():
    # The same step without synchronized BatchNorm normalizes each replica's
    # 4 pairs on their own: the result must differ, or the test above proves
    # nothing.
    result = _fit_step(sync=False)
    assert result["diff"] > 0.1, result
    assert abs(result["dist_loss"] - result["single_loss"]) > 1e-4


_JAX_DATA_PARALLEL = """
import json, numpy as np, jax, keras
import keras_simclr as ks
assert len(jax.devices()) == 2, jax.devices()

def build():
    keras.utils.set_random_seed(7)
    model = ks.models.ContrastiveModel(
        encoder=ks.models.ResNet(
            18, width_multiplier=0.125, cifar_stem=True, input_shape=(16, 16, 3)
        ),
        projection_head=ks.models.ProjectionHead(output_dim=16),
        augmenter=None, temperature=0.2)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    return model

rng = np.random.default_rng(1)
view_a = rng.uniform(size=(8, 16, 16, 3)).astype("float32")
view_b = rng.uniform(size=(8, 16, 16, 3)).astype("float32")

single = build()
single((view_a[:2], view_b[:2]))
initial = [np.array(w) for w in single.weights]
h1 = single.fit(x=(view_a, view_b), batch_size=8, epochs=1, shuffle=False, verbose=0)

distribution = ks.distribute.resolve_strategy()
assert isinstance(distribution, keras.distribution.DataParallel)
assert keras.distribution.distribution() is None  # nothing set globally


class SeenByFit(keras.callbacks.Callback):
    # Keras's JAX trainer shards each batch over the distribution current when fit runs.
    def on_train_batch_begin(self, batch, logs=None):
        self.current = keras.distribution.distribution()


seen = SeenByFit()
with distribution.scope():
    dist = build()
    dist((view_a[:2], view_b[:2]))
    dist.set_weights(initial)
    h2 = dist.fit(x=(view_a, view_b), batch_size=8, epochs=1, shuffle=False, verbose=0,
                  callbacks=[seen])
assert seen.current is distribution
assert keras.distribution.distribution() is None  # the scope restored it
kernel = dist.encoder.get_layer("stem_conv").kernel.value
batch_sharding = str(distribution.get_data_layout((8, 16, 16, 3)).axes)
single_weights = [np.array(w) for w in single.weights]
diff = max(float(np.abs(np.array(a) - b).max()) for a, b in zip(dist.weights, single_weights))
print(json.dumps({"single_loss": h1.history["loss"][0], "dist_loss": h2.history["loss"][0],
                  "diff": diff, "layout": batch_sharding,
                  "devices": len(kernel.sharding.device_set)}))
"""


@pytest.mark.process
def test_jax_data_parallel_sees_the_global_batch():
    out = run_in_subprocess(
        _JAX_DATA_PARALLEL,
        backend="jax",
        extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    result = json.loads(out.strip().splitlines()[-1])
    # Replicated weights, batch sharded over both devices, and the step on the
    # sharded batch equals the single-device step: global negatives and global
    # BatchNorm statistics.
    assert result["devices"] == 2
    assert "batch" in result["layout"]
    np.testing.assert_allclose(result["dist_loss"], result["single_loss"], rtol=1e-5)
    # Weights moved by up to ~3 in this step; the two runs agree to float32
    # round-off (about 2e-5 absolute, 6e-6 relative, here).
    assert result["diff"] < 1e-4, result
