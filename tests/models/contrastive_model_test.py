import json

import keras
import numpy as np
import pytest

from keras_simclr.augment import SimCLRAugmentation
from keras_simclr.losses import nt_xent_loss
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import ResNet
from keras_simclr.optimizers import LARS
from tests.conftest import run_in_subprocess


def _small_model(augmenter="cifar", temperature=0.5, num_classes=None, seed=1):
    keras.utils.set_random_seed(seed)
    return ContrastiveModel(
        encoder=ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=2, output_dim=32),
        augmenter=SimCLRAugmentation(32, preset=augmenter, seed=seed) if augmenter else None,
        temperature=temperature,
        num_classes=num_classes,
    )


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.slow
def test_fit_on_real_cifar_images_lowers_the_loss(cifar_images):
    images, _ = cifar_images
    model = _small_model()
    model.compile(optimizer=LARS(learning_rate=0.3, weight_decay=1e-6))
    history = model.fit(images, batch_size=64, epochs=8, shuffle=True, verbose=0)
    losses = history.history["loss"]
    # NT-Xent of 2x64 views at chance is log(127) = 4.84.
    assert 4.0 < losses[0] < 5.0
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.1, losses
    assert all(0.0 <= v <= 1.0 for v in history.history["contrastive_accuracy"])
    # Not collapsed: healthy spread is about 1/sqrt(32) = 0.18.
    assert 0.05 < history.history["z_std"][-1] < 0.5
    features = model.encoder(images[:4].astype("float32") / 255.0)
    assert tuple(features.shape) == (4, 64)


@pytest.mark.slow
def test_history_loss_is_the_real_nt_xent_value():
    # With learning rate 0 one step leaves the weights unchanged, so the
    # reported loss must equal NT-Xent recomputed on the model's outputs.
    rng = np.random.default_rng(0)
    view_a = rng.uniform(size=(8, 32, 32, 3)).astype("float32")
    view_b = rng.uniform(size=(8, 32, 32, 3)).astype("float32")
    model = _small_model(augmenter=None, temperature=0.2)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = model.fit(x=(view_a, view_b), batch_size=8, epochs=1, verbose=0, shuffle=False)
    z = _np(model((view_a, view_b), training=True)["z"])
    expected = float(_np(nt_xent_loss(z[:8], z[8:], temperature=0.2)))
    assert expected > 1.0
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-4)


@pytest.mark.slow
def test_pairs_from_tf_data_with_labels_train_the_probe_only():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    view_a = rng.uniform(size=(16, 32, 32, 3)).astype("float32")
    view_b = rng.uniform(size=(16, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, size=16).astype("int32")

    def train(with_labels):
        model = _small_model(augmenter=None, num_classes=3, seed=3)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
        if with_labels:
            data = tf.data.Dataset.from_tensor_slices(((view_a, view_b), labels))
        else:
            data = tf.data.Dataset.from_tensor_slices(((view_a, view_b),))
        history = model.fit(data.batch(8), epochs=1, verbose=0)
        return model, history.history

    labelled, labelled_history = train(True)
    unlabelled, _ = train(False)
    assert "probe_accuracy" in labelled_history
    # stop_gradient: the labels change the probe, never the encoder or head.
    for a, b in zip(labelled.encoder.weights, unlabelled.encoder.weights):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-6)
    assert not np.allclose(_np(labelled.probe.kernel), _np(unlabelled.probe.kernel))


@pytest.mark.parametrize(
    "kwargs, x, match",
    [
        ({}, np.zeros((4, 32, 32), "uint8"), r"\(4, 32, 32\)"),
        ({}, np.zeros((4, 32, 32, 1), "uint8"), r"\(4, 32, 32, 1\)"),
        ({}, np.zeros((1, 32, 32, 3), "uint8"), r"at least 2 images.*\(1, 32, 32, 3\)"),
        ({"augmenter": None}, np.zeros((4, 32, 32, 3), "float32"), "pair"),
    ],
)
def test_bad_input_errors_name_what_was_received(kwargs, x, match):
    model = _small_model(**kwargs)
    with pytest.raises(ValueError, match=match):
        model(x, training=True)


def test_temperature_and_num_classes_are_validated():
    with pytest.raises(ValueError, match="temperature=0"):
        _small_model(temperature=0)
    with pytest.raises(ValueError, match="temperature=-0.1"):
        _small_model(temperature=-0.1)
    with pytest.raises(ValueError, match="num_classes=1"):
        _small_model(num_classes=1)


def test_config_round_trip_and_keras_file(tmp_path):
    model = _small_model(num_classes=10)
    images = np.random.default_rng(2).integers(0, 255, size=(4, 32, 32, 3)).astype("uint8")
    model(images)  # builds
    config = model.get_config()
    clone = ContrastiveModel.from_config(config)
    assert clone.temperature == 0.5 and clone.num_classes == 10
    assert clone.augmenter.get_config() == model.augmenter.get_config()
    path = str(tmp_path / "simclr.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ContrastiveModel)
    views = images.astype("float32") / 255.0
    np.testing.assert_allclose(_np(loaded.encoder(views)), _np(model.encoder(views)), atol=1e-5)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_allclose(_np(a), _np(b))


@pytest.mark.process
def test_builds_and_steps_on_the_jax_backend():
    # Also: synchronized BatchNorm is accepted on JAX (Keras refuses
    # `BatchNormalization(synchronized=True)` there), an augmenter needs no
    # seed, and under DataParallel (two host devices) a BatchNorm's batch
    # statistics are those of the global batch, as the docstrings say.
    out = run_in_subprocess(
        """
import numpy as np, keras, jax
import keras_simclr as ks
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
encoder = ks.models.ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3),
                           sync_batchnorm=True)
head = ks.models.ProjectionHead(output_dim=16, sync_batchnorm=True)
model = ks.models.ContrastiveModel(
    encoder=encoder,
    projection_head=head,
    augmenter=ks.augment.SimCLRAugmentation(32, preset="cifar"),
    temperature=0.5)
model.compile(optimizer=ks.optimizers.LARS(1.0))
images = np.random.default_rng(0).integers(0, 255, size=(32, 32, 32, 3)).astype("uint8")
before = [np.array(w) for w in encoder.trainable_weights]
history = model.fit(images, batch_size=16, epochs=2, verbose=0)
print("LOSS", *history.history["loss"])
after = encoder.trainable_weights
print("CHANGED", sum(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after)),
      len(before))
print("SYNC", encoder.get_config()["sync_batchnorm"], head.get_config()["sync_batchnorm"])
devices = jax.devices("cpu")
with keras.distribution.DataParallel(devices=devices).scope():
    norm = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(momentum=0.0)])
    norm.compile(optimizer="sgd", loss="mse")
    # One batch of 8: the first 4 rows (device 0) are 0, the last 4 are 10.
    x = np.concatenate([np.zeros((4, 2)), np.full((4, 2), 10.0)]).astype("float32")
    norm.fit(x, np.zeros((8, 2), "float32"), batch_size=8, shuffle=False, verbose=0)
print("DEVICES", len(devices), "MOVING_MEAN", *np.asarray(norm.layers[0].moving_mean))
""",
        backend="jax",
        extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    losses = [float(v) for v in out.split("LOSS")[1].split("\n")[0].split()]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(2.0 < l < 5.0 for l in losses)
    changed, total = (int(v) for v in out.split("CHANGED")[1].split("\n")[0].split())
    assert changed > total // 2, (changed, total)
    assert out.split("SYNC")[1].split("\n")[0].split() == ["True", "True"]
    devices, moving_mean = out.split("DEVICES")[1].split("\n")[0].split("MOVING_MEAN")
    assert int(devices) == 2
    # The global batch mean (5), not a device's (0 or 10).
    np.testing.assert_allclose([float(v) for v in moving_mean.split()], [5.0, 5.0])


@pytest.mark.slow
def test_mixed_bfloat16_loss_matches_float32():
    rng = np.random.default_rng(4)
    view_a = rng.uniform(size=(16, 32, 32, 3)).astype("float32")
    view_b = rng.uniform(size=(16, 32, 32, 3)).astype("float32")
    model = _small_model(augmenter=None, temperature=0.2)
    z32 = _np(model((view_a, view_b), training=True)["z"])
    weights = model.get_weights()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = _small_model(augmenter=None, temperature=0.2)
        mixed((view_a[:2], view_b[:2]))
        mixed.set_weights(weights)
        out = mixed((view_a, view_b), training=True)
        assert out["z"].dtype == "bfloat16"
        z16 = _np(keras.ops.cast(out["z"], "float32"))
        mixed.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
        history = mixed.fit(x=(view_a, view_b), batch_size=16, epochs=1, verbose=0, shuffle=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    loss32 = float(_np(nt_xent_loss(z32[:16], z32[16:], temperature=0.2)))
    loss16 = float(_np(nt_xent_loss(z16[:16], z16[16:], temperature=0.2)))
    # bf16 keeps 8 bits of mantissa: the loss (computed in float32 from bf16
    # projections) stays within 2% of the float32 loss.
    np.testing.assert_allclose(loss16, loss32, rtol=2e-2)
    np.testing.assert_allclose(history.history["loss"][0], loss32, rtol=2e-2)
    assert np.isfinite(history.history["loss"][0])


# ## Inputs checked where they enter `fit` (the compiled step cannot check values)

TINY = 16


def _tiny_model(augmenter=True, num_classes=None):
    """A conv encoder on 16 px images: fits in a second or two."""
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((TINY, TINY, 3)),
            keras.layers.Conv2D(4, 3, strides=2),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model = ContrastiveModel(
        encoder,
        ProjectionHead(output_dim=8),
        augmenter=SimCLRAugmentation(TINY, preset="cifar", seed=0) if augmenter else None,
        num_classes=num_classes,
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01))
    return model


def _tiny_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, TINY, TINY, 3)).astype("uint8")


@pytest.mark.slow
def test_fit_refuses_float_images_in_0_255():
    import tensorflow as tf

    floats = _tiny_images(16).astype("float32")
    floats[0, 0, 0, 0] = 255.0
    match = r"Divide 0-255 float images by 255, or pass them as uint8.*dtype=float32.*max=255"
    with pytest.raises(ValueError, match=match):
        _tiny_model().fit(floats, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=match):
        _tiny_model().fit(tf.data.Dataset.from_tensor_slices(floats).batch(8), verbose=0)
    # Ready views without an augmenter, named by the view.
    views = (floats / 255.0, floats)
    with pytest.raises(ValueError, match=r"view_b with dtype=float32, min=0, max=255"):
        _tiny_model(augmenter=False).fit(views, batch_size=8, verbose=0)
    # The same images in [0, 1] train.
    history = _tiny_model().fit(floats / 255.0, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_fit_refuses_a_dataset_of_view_pairs_with_an_augmenter():
    import tensorflow as tf

    views = _tiny_images(16).astype("float32") / 255.0
    pairs = tf.data.Dataset.from_tensor_slices((views, views)).batch(8)
    shapes = r"\(\(None, 16, 16, 3\), \(None, 16, 16, 3\)\)"
    with pytest.raises(ValueError, match=f"augmenter=None.*Received: .*{shapes}"):
        _tiny_model().fit(pairs, verbose=0)
    # Without an augmenter Keras would read them as (x, y) too.
    with pytest.raises(ValueError, match=rf"\(\(view_a, view_b\),\).*{shapes}"):
        _tiny_model(augmenter=False).fit(pairs, verbose=0)


def test_fit_refuses_an_explicit_y_without_a_probe():
    import tensorflow as tf

    images, labels = _tiny_images(16), np.arange(16) % 3
    with pytest.raises(
        ValueError, match=r"num_classes=None.*Received: y of type ndarray and shape \(16,\)"
    ):
        _tiny_model().fit(images, labels, batch_size=8, verbose=0)
    # Labels riding along in a dataset (as pretraining_dataset yields them) are fine.
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8, drop_remainder=True)
    history = _tiny_model().fit(data, verbose=0)
    assert "probe_accuracy" not in history.history


@pytest.mark.slow
def test_fit_refuses_a_last_batch_of_one_image():
    import tensorflow as tf

    images = _tiny_images(17)
    with pytest.raises(
        ValueError, match=r"at least 2 images.*17 training images with batch_size=8"
    ):
        _tiny_model().fit(images, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"at least 2 images.*batch_size=1"):
        _tiny_model().fit(images[:16], batch_size=1, verbose=0)
    # An unbatched remainder in tf.data: the size is known only as it runs.
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)
    with pytest.raises(ValueError, match=r"at least 2 images.*a batch of 1 image"):
        _tiny_model().fit(data, verbose=0)
    # A last batch of 2 trains.
    history = _tiny_model().fit(_tiny_images(18), batch_size=8, verbose=0)
    assert history.history["loss"][0] > 0


@pytest.mark.slow
def test_probe_labels_outside_num_classes_are_refused():
    import tensorflow as tf

    images = _tiny_images(16)
    labels = np.arange(16) % 3
    labels[[2, 5]] = [7, 3]
    match = r"y values \[3 7\] outside \[0, 3\), num_classes=3"
    with pytest.raises(ValueError, match=match):
        _tiny_model(num_classes=3).fit(images, labels, batch_size=8, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    with pytest.raises(ValueError, match=match):
        _tiny_model(num_classes=3).fit(data, verbose=0)
    with pytest.raises(ValueError, match=r"y values \[-1\]"):
        _tiny_model(num_classes=3).fit(images, -np.ones(16, "int32"), batch_size=8, verbose=0)


def test_uint8_datasets_of_a_static_batch_size_are_not_mapped():
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(_tiny_images(16)).batch(8, drop_remainder=True)
    model = _tiny_model()
    assert model._input_checks().data(data, None, None, 0.0, training=True, what="x") is data
    # With a probe the labels must be read: the dataset is mapped.
    labelled = tf.data.Dataset.from_tensor_slices((_tiny_images(16), np.zeros(16, "int32")))
    labelled = labelled.batch(8, drop_remainder=True)
    probed = _tiny_model(num_classes=3)
    checked = probed._input_checks().data(labelled, None, None, 0.0, training=True, what="x")
    assert checked is not labelled


@pytest.mark.process
def test_input_checks_raise_on_the_jax_backend():
    out = run_in_subprocess(
        """
import numpy as np, keras, tensorflow as tf
import keras_simclr as ks
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
encoder = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, strides=2),
                            keras.layers.GlobalAveragePooling2D()])
model = ks.models.ContrastiveModel(encoder, ks.models.ProjectionHead(output_dim=8),
    augmenter=ks.augment.SimCLRAugmentation(16, preset="cifar", seed=0), num_classes=3)
model.compile(optimizer="sgd")
floats = np.random.default_rng(0).integers(0, 256, size=(17, 16, 16, 3)).astype("float32")
cases = {
    "array": lambda: model.fit(floats, batch_size=8, verbose=0),
    "dataset": lambda: model.fit(tf.data.Dataset.from_tensor_slices(floats).batch(8), verbose=0),
    "remainder": lambda: model.fit(
        tf.data.Dataset.from_tensor_slices(floats / 255).batch(8), verbose=0),
    "labels": lambda: model.fit(tf.data.Dataset.from_tensor_slices(
        (floats[:16] / 255, np.full(16, 5))).batch(8), verbose=0),
}
for name, run in cases.items():
    try:
        run()
    except ValueError as error:
        print("RAISED", name, str(error).split("Received: ")[1])
""",
        backend="jax",
    )
    assert "RAISED array x with dtype=float32, min=0, max=255" in out
    assert "RAISED dataset x with dtype=float32, min=0, max=255" in out
    assert "RAISED remainder a batch of 1 image(s)" in out
    assert "RAISED labels y values [5] outside [0, 3), num_classes=3" in out


class _StepCounter(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.sizes = []

    def on_train_batch_end(self, batch, logs=None):
        self.sizes.append(batch)


def _steps_per_epoch(history_callback, epochs=1):
    return len(history_callback.sizes) // epochs


@pytest.mark.slow
def test_drop_remainder_trains_full_batches_only():
    # TensorFlow keeps Keras's last partial batch unless asked (JAX drops
    # it by default: tested in a JAX subprocess below).
    model = _tiny_model()
    counter = _StepCounter()
    model.fit(_tiny_images(20), batch_size=8, callbacks=[counter], verbose=0)
    assert _steps_per_epoch(counter) == 3
    model.fit(_tiny_images(20), batch_size=8, drop_remainder=True, callbacks=[counter], verbose=0)
    assert _steps_per_epoch(counter) == 2
    # A remainder of 1 image is dropped, not refused.
    model.fit(_tiny_images(17), batch_size=8, drop_remainder=True, callbacks=[counter], verbose=0)
    assert _steps_per_epoch(counter) == 2
    # Data smaller than one batch trains as one batch.
    model.fit(_tiny_images(6), batch_size=8, drop_remainder=True, callbacks=[counter], verbose=0)
    assert _steps_per_epoch(counter) == 1
    # Pairs without an augmenter, and Keras's validation_split (the last 4
    # of 20 validate; 16 train in 2 batches of 8: nothing left to drop).
    pairs = _tiny_model(augmenter=False)
    views = _tiny_images(21).astype("float32") / 255.0
    history = pairs.fit(
        (views, views[::-1]),
        batch_size=6,
        validation_split=0.2,
        drop_remainder=True,
        epochs=2,
        callbacks=[counter],
        verbose=0,
    )
    # floor(21 * 0.8) = 16 train in 2 full batches of 6; 5 validate.
    assert _steps_per_epoch(counter, epochs=2) == 2
    assert len(history.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="Received: drop_remainder='yes'"):
        model.fit(_tiny_images(16), batch_size=8, drop_remainder="yes", verbose=0)


@pytest.mark.slow
def test_validation_scores_fixed_views_with_the_head_on_batch_statistics(cifar_images):
    # Real images at 16 px (the tiny encoder collapses on uniform noise).
    images = cifar_images[0][:32, ::2, ::2]
    # The head's moving averages far from the batch statistics, as while
    # the weights change fast early in training: in inference mode they
    # crowd the projections together (a false collapse).
    views = images[:16].astype("float32") / 255.0
    pairs = (views, views[:, ::-1])
    model = _tiny_model(augmenter=False)
    model.fit(pairs, batch_size=16, verbose=0)
    for norm in model.projection_head.norm_layers:
        norm.moving_mean.assign(norm.moving_mean + 10.0)
    results = model.evaluate(pairs, batch_size=16, return_dict=True, verbose=0)
    both = np.concatenate(pairs)
    h = model.encoder(both, training=False)
    z = _np(model.projection_head(h, training=False, batch_statistics=True))
    expected = float(_np(nt_xent_loss(z[:16], z[16:], temperature=model.temperature)))
    np.testing.assert_allclose(results["loss"], expected, rtol=1e-5)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(results["z_std"], unit.std(axis=0).mean(), rtol=1e-4)
    crowded = _np(model.projection_head(h, training=False))
    crowded /= np.linalg.norm(crowded, axis=1, keepdims=True)
    assert crowded.std(axis=0).mean() < 0.5 * results["z_std"]

    # With an augmenter every evaluation scores the same views, and
    # training's random streams are put back afterwards.
    model = _tiny_model()
    model.fit(images, batch_size=16, verbose=0)
    states = [_np(v) for v in model.augmenter.variables]
    first = model.evaluate(images, batch_size=16, return_dict=True, verbose=0)
    second = model.evaluate(images, batch_size=16, return_dict=True, verbose=0)
    assert first == second
    for before, state in zip(states, model.augmenter.variables):
        np.testing.assert_array_equal(before, _np(state))
    history = model.fit(images, batch_size=16, epochs=2, validation_data=(images,), verbose=0)
    assert len(set(history.history["val_loss"])) == 2  # the model moved
    assert history.history["val_z_std"][-1] > 0.5 * history.history["z_std"][-1]


@pytest.mark.process
def test_jax_fit_of_2000_images_at_batch_128_compiles_the_step_once():
    # 2000 = 15 * 128 + 80: Keras's own batching would end each epoch with a
    # batch of 80 and compile the step a second time.
    out = run_in_subprocess(
        """
import json, numpy as np, keras
import keras_simclr as ks
from keras_simclr.augment import RandomResizedCrop
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
encoder = keras.Sequential([
    keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, strides=2),
    keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D()])
model = ks.models.ContrastiveModel(encoder, ks.models.ProjectionHead(output_dim=8),
                                   augmenter=RandomResizedCrop(16, 16, horizontal_flip=True))
traces = {"train": [], "test": []}
compute_loss = model.compute_loss
def counting(x=None, y=None, y_pred=None, sample_weight=None, training=True):
    # Python runs here once per trace of the jitted step.
    traces["train" if training else "test"].append(int(y_pred["z"].shape[0]))
    return compute_loss(x, y, y_pred, sample_weight, training)
model.compute_loss = counting
model.compile(optimizer=keras.optimizers.SGD(0.001))
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(2000, 16, 16, 3)).astype("uint8")
held_out = rng.integers(0, 256, size=(100, 16, 16, 3)).astype("uint8")
steps = []
count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(batch))
history = model.fit(images, batch_size=128, epochs=2, validation_data=(held_out,),
                    callbacks=[count], verbose=0)
states = [np.array(v) for v in model.augmenter.variables]
first = model.evaluate(held_out, batch_size=128, return_dict=True, verbose=0)
second = model.evaluate(held_out, batch_size=128, return_dict=True, verbose=0)
print(json.dumps({
    "traces": traces, "steps": len(steps), "history": history.history,
    "first": first, "second": second,
    "states_kept": all(
        np.array_equal(a, np.array(v)) for a, v in zip(states, model.augmenter.variables)),
}))
""",
        backend="jax",
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["traces"]["train"] == [256]  # 2 x 128 views, once
    assert result["steps"] == 2 * 15
    assert result["traces"]["test"] == [200]
    assert all(np.isfinite(result["history"]["loss"]))
    # Fixed validation views on JAX too (the seed states reach the step).
    assert result["first"] == result["second"]
    assert result["states_kept"]
    assert result["first"]["z_std"] > 0.02


# ## The step: one gather, loss and metrics from it


@pytest.mark.process
def test_one_cross_replica_gather_per_view_and_step_under_mirrored_strategy():
    # The loss and the metrics (contrastive_accuracy, z_std) read the same
    # gathered projections: one all_gather per view in the traced step
    # (it was two, the metrics gathering again).
    out = run_in_subprocess(
        """
import json, numpy as np, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras_simclr as ks
from keras_simclr.models import contrastive_model
gathered = []
gather = contrastive_model.cross_replica_concat
def counting(tensor):
    gathered.append(int(tensor.shape[0]))
    return gather(tensor)
contrastive_model.cross_replica_concat = counting
keras.utils.set_random_seed(0)
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    encoder = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D()])
    model = ks.models.ContrastiveModel(encoder, ks.models.ProjectionHead(output_dim=4))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
views = np.random.default_rng(0).random((2, 16, 8, 8, 3)).astype("float32")
history = model.fit((views[0], views[1]), batch_size=16, epochs=1, verbose=0)
print(json.dumps({"gathered": gathered, "z_std": history.history["z_std"]}))
""",
        backend="tensorflow",
    )
    result = json.loads(out.strip().splitlines()[-1])
    # Traced once per replica: 2 replicas x 2 views of 8 rows each.
    assert result["gathered"] == [8, 8, 8, 8]
    assert result["z_std"][0] > 0


def test_loss_tail_adds_probe_and_layer_losses_and_the_metrics_come_with_the_loss():
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((TINY, TINY, 3)),
            keras.layers.Conv2D(4, 3, strides=2, kernel_regularizer=keras.regularizers.L2(0.1)),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model = ContrastiveModel(encoder, ProjectionHead(output_dim=8), augmenter=None, num_classes=3)
    rng = np.random.default_rng(0)
    views = (rng.random((8, TINY, TINY, 3), "float32"), rng.random((8, TINY, TINY, 3), "float32"))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    y_pred = model(views, training=True)
    loss = float(_np(model.compute_loss(y=labels, y_pred=y_pred)))
    z_a, z_b = np.split(_np(y_pred["z"]), 2)
    logits = _np(y_pred["probe_logits"]).astype("float64")
    both = np.concatenate([labels, labels])
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    probe = -log_probs[np.arange(16), both].mean()
    regularization = float(_np(model.losses[0]))
    expected = float(_np(nt_xent_loss(z_a, z_b, temperature=0.1))) + probe + regularization
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert regularization > 0
    # compute_loss updated the metrics; compute_metrics only reads them.
    results = model.compute_metrics(None, labels, y_pred)
    z = np.concatenate([z_a, z_b])
    # Rows of zeros (ReLU head) stay zero, as tf.math.l2_normalize keeps them.
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(float(results["z_std"]), z.std(axis=0).mean(), rtol=1e-5)
    np.testing.assert_allclose(
        float(results["probe_accuracy"]), (logits.argmax(axis=1) == both).mean()
    )
