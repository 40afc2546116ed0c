"""Every evaluation gives the single-device result on a distributed model.

Keras's TensorFlow `predict_on_batch` under a `tf.distribute` strategy hands
the whole batch to every replica and concatenates their outputs (2,000
features for 1,000 images on two replicas); on JAX, a data-parallel `fit`
refuses a batch that does not split over the devices. Here a model is built
and trained under `MirroredStrategy` over two logical CPU devices (and under
JAX `DataParallel` over two forced host devices), its weights are copied into
a single-device twin, and every evaluation must give the twin's numbers.

Logical devices must be configured before TensorFlow (or JAX) initializes,
so each scenario runs in a fresh process and prints its numbers as JSON.
"""

import json

import numpy as np
import pytest

from tests.conftest import run_in_subprocess

pytestmark = pytest.mark.process


def small_encoder(synchronized=False):
    """conv -> BatchNorm -> ReLU, twice, -> global average pooling: (B, 32, 32, 3) -> (B, 16).

    The evaluation code treats every encoder alike; this one traces and
    compiles in a fraction of a ResNet's time (the tests start fresh processes).
    """
    import keras

    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i, filters in enumerate((8, 16)):
        x = keras.layers.Conv2D(filters, 3, strides=2, use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(synchronized=synchronized, name=f"bn{i}")(x)
        x = keras.layers.ReLU()(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="encoder")


_MIRRORED = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import keras_simclr as ks
from keras_simclr import evaluation as ev
from tests.conftest import decode_cifar
from tests.evaluation.distributed_test import small_encoder

images, labels = decode_cifar("train", 192)
train, test = (images[:128], labels[:128]), (images[128:], labels[128:])
floats = images[:64].astype("float32") / 255.0
views = (floats, floats[:, :, ::-1])


def build():
    # Synchronized BatchNorm: the mirrored step then equals the single-device one.
    model = ks.models.ContrastiveModel(
        encoder=small_encoder(synchronized=True),
        projection_head=ks.models.ProjectionHead(output_dim=16, sync_batchnorm=True),
        augmenter=None, temperature=0.2)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    model((views[0][:2], views[1][:2]))
    return model


keras.utils.set_random_seed(3)
single = build()  # the single-device twin
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build()
    mirrored.set_weights(single.get_weights())

# threshold 100: the floor 100 / sqrt(16) = 25 is above any z_std, so it fires.
monitor = ev.KNNMonitor(train, test, 10, batch_size=48)
alarm = ev.CollapseAlarm(threshold=100.0)
history = mirrored.fit(views, batch_size=32, epochs=1, shuffle=False, verbose=0,
                       callbacks=[monitor, alarm]).history
single_history = single.fit(views, batch_size=32, epochs=1, shuffle=False, verbose=0).history
out = {"single": {"z_std": single_history["z_std"]},
       "mirrored": {"monitor": monitor.results[1], "alarms": alarm.alarms,
                    "history_knn": history["knn_accuracy"], "z_std": history["z_std"]}}

# From here on the twin holds the mirrored model's trained weights.
single.set_weights(mirrored.get_weights())
features = {}
for name, model in (("single", single), ("mirrored", mirrored)):
    result = out[name]
    features[name] = ev.extract_features(model, images[:100], batch_size=48)  # 48+48+4
    result["rows"] = len(features[name])
    result["knn"] = ev.evaluate_knn(model, train, test, 10, batch_size=48)
    keras.utils.set_random_seed(5)
    result["linear_features"] = ev.linear_evaluation(
        model, train, test, 10, epochs=3, batch_size=32, augment=False, seed=5)["top1"]
    keras.utils.set_random_seed(5)
    result["linear_augment"] = ev.linear_evaluation(
        model, train, test, 10, epochs=1, batch_size=32, seed=5)["top1"]
    keras.utils.set_random_seed(5)
    result["fine_tune"] = ev.fine_tune(
        model, train, test, 10, ft_proj_selector=1, epochs=1, batch_size=32, seed=5)["top1"]
out["feature_diff"] = float(np.abs(features["single"] - features["mirrored"]).max())

# Called inside the strategy's scope, where a model built outside it takes the
# strategy too, and fine_tune's model (built there) trains on both replicas.
with strategy.scope():
    scoped = {"rows": len(ev.extract_features(single, images[:100], batch_size=48)),
              "rows_mirrored": len(ev.extract_features(mirrored, images[:100], batch_size=48)),
              "knn": ev.evaluate_knn(mirrored, train, test, 10, batch_size=48)}
    tuned = ev.fine_tune(mirrored, train, test, 10, epochs=1, batch_size=32, seed=5)
# fine_tune's top1 is its model's accuracy on the test set, whatever it learned.
logits = keras.ops.convert_to_numpy(tuned["model"](test[0], training=False))
scoped["fine_tune_top1"] = tuned["top1"]
scoped["fine_tune_recount"] = float(np.mean(np.argmax(logits, axis=1) == test[1]))
out["scoped"] = scoped
print(json.dumps(out))
"""


def test_mirrored_model_evaluates_as_on_one_device():
    out = run_in_subprocess(_MIRRORED, backend="tensorflow")
    result = json.loads(out.strip().splitlines()[-1])
    single, mirrored, scoped = result["single"], result["mirrored"], result["scoped"]
    # One feature row per image: 100, not 200.
    assert single["rows"] == mirrored["rows"] == 100, result
    assert scoped["rows"] == scoped["rows_mirrored"] == 100, result
    assert result["feature_diff"] < 1e-5, result
    # Same weights, same numbers.
    for key in ("knn", "linear_features", "linear_augment", "fine_tune"):
        assert mirrored[key] == single[key], (key, result)
    assert scoped["knn"] == single["knn"], result
    # Inside the scope fine_tune's copy trains on both replicas: another run,
    # whose number need not be the single-device one (0.094 against 0.078 here
    # with the same seed); it must still be its model's accuracy on the 64
    # test images.
    assert scoped["fine_tune_top1"] == scoped["fine_tune_recount"], result
    # KNNMonitor inside the mirrored fit: what evaluate_knn gives the
    # single-device twin for the same weights, and in History.
    assert mirrored["monitor"] == single["knn"], result
    assert mirrored["history_knn"] == [mirrored["monitor"]], result
    # CollapseAlarm runs at the end of the mirrored epoch, on a z_std computed
    # over the global batch: the single-device value (a mean of per-replica
    # deviations was 1.2% lower here).
    assert mirrored["alarms"] == [1], result
    np.testing.assert_allclose(mirrored["z_std"], single["z_std"], rtol=1e-4)


_DATA_PARALLEL = """
import json, numpy as np, jax, keras
from keras_simclr import evaluation as ev
from tests.conftest import decode_cifar
from tests.evaluation.distributed_test import small_encoder

images, labels = decode_cifar("train", 159)
test = (images[64:], labels[64:])  # 95 images: no batch of them splits over 2 devices

keras.utils.set_random_seed(3)
single = small_encoder()
distribution = keras.distribution.DataParallel(devices=jax.devices())
keras.distribution.set_distribution(distribution)
dist = small_encoder()
dist.set_weights(single.get_weights())
out = {"devices": len(dist.get_layer("conv0").kernel.value.sharding.device_set)}
features = {}
for name, model in (("dist", dist), ("single", single)):
    if name == "single":
        keras.distribution.set_distribution(None)
    result = out[name] = {}
    features[name] = ev.extract_features(model, images[:99], batch_size=32)  # 32 x 3 + 3
    result["rows"] = len(features[name])
    result["knn"] = ev.evaluate_knn(model, (images[:61], labels[:61]), test, 10, batch_size=32)
    for n in (61, 64):  # batches of 16: 61 ends on 13 (refused by the data-parallel fit), 64 splits
        keras.utils.set_random_seed(5)
        result["linear_%d" % n] = ev.linear_evaluation(
            model, (images[:n], labels[:n]), test, 10, epochs=2, batch_size=16,
            augment=False, seed=5)["top1"]
    result["distribution_after"] = type(keras.distribution.distribution()).__name__
out["feature_diff"] = float(np.abs(features["single"] - features["dist"]).max())
print(json.dumps(out))
"""


def test_jax_data_parallel_model_evaluates_as_on_one_device():
    out = run_in_subprocess(
        _DATA_PARALLEL,
        backend="jax",
        extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    result = json.loads(out.strip().splitlines()[-1])
    single, dist = result["single"], result["dist"]
    assert result["devices"] == 2, result
    assert dist["rows"] == single["rows"] == 99, result
    assert result["feature_diff"] < 1e-5, result
    for key in ("knn", "linear_61", "linear_64"):
        assert dist[key] == single[key], (key, result)
    # The distribution lifted for the uneven probe is back afterwards.
    assert dist["distribution_after"] == "DataParallel", result
