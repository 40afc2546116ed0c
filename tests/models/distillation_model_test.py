import re

import keras
import numpy as np
import pytest

from keras_simclr.augment import RandomResizedCrop
from keras_simclr.losses.distillation import distillation_loss
from keras_simclr.models.distillation_model import DistillationModel
from tests.conftest import run_in_subprocess

SIZE = 8


def _classifier(seed, num_classes=4, batchnorm=True, name=None):
    """A tiny images -> logits model (conv, optional BatchNorm, pool, dense)."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(6, 3, padding="same")]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers += [
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes),
    ]
    return keras.Sequential(layers, name=name)


def _linear(seed, num_classes=4, scale=1.0):
    """Flatten + Dense: a student that can match a linear teacher exactly."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    )
    if scale != 1.0:
        kernel, bias = model.get_weights()
        model.set_weights([kernel * scale, bias])
    return model


def _images(n, seed=0, dtype="uint8"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIZE, SIZE, 3)).astype("uint8")
    return images if dtype == "uint8" else images.astype("float32") / 255.0


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fit_leaves_the_teacher_unchanged_and_trains_the_student():
    teacher = _classifier(0)
    # Non-default BatchNorm statistics: a teacher in training mode would move them.
    weights = teacher.get_weights()
    weights[3] = np.full_like(weights[3], 0.3)  # moving mean
    weights[4] = np.full_like(weights[4], 2.0)  # moving variance
    teacher.set_weights(weights)
    student = _classifier(1)
    model = DistillationModel(
        teacher,
        student,
        temperature=2.0,
        augmenter=RandomResizedCrop(SIZE, SIZE, scale=(0.5, 1.0), horizontal_flip=True, seed=0),
    )
    assert not teacher.trainable
    assert {id(v) for v in model.trainable_weights} == {id(v) for v in student.trainable_weights}
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5, momentum=0.9))
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    history = model.fit(_images(32), batch_size=16, epochs=2, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(
        not np.allclose(before, after)
        for before, after in zip(student_before, student.get_weights())
    )
    assert set(history.history) == {"loss", "teacher_agreement"}
    assert all(np.isfinite(history.history["loss"]))


def test_student_learns_to_agree_with_the_teacher():
    # A linear teacher with confident, varied predictions; a linear student
    # from another initialization can match it exactly.
    teacher = _linear(0, scale=20.0)
    student = _linear(1)
    images = _images(64, seed=1, dtype="float32")
    teacher_classes = np.argmax(_np(teacher(images)), axis=1)
    assert len(np.unique(teacher_classes)) >= 3  # not a trivial target
    model = DistillationModel(teacher, student, temperature=1.0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02))
    history = model.fit(images, batch_size=32, epochs=25, verbose=0, shuffle=False)
    agreement = history.history["teacher_agreement"]
    loss = history.history["loss"]
    assert agreement[0] < 0.6, agreement
    assert agreement[-1] > 0.9, agreement
    assert loss[-1] < loss[0] - 0.2, loss
    student_classes = np.argmax(model.predict(images, verbose=0), axis=1)
    assert np.mean(student_classes == teacher_classes) > 0.9


def test_history_loss_is_the_distillation_loss_of_the_batch():
    # With learning rate 0 the weights stay put, so the logged loss and
    # agreement must equal distillation_loss on the student in training mode
    # (batch statistics) and the teacher in inference mode.
    images = _images(16, seed=2)
    floats = images.astype("float32") / 255.0
    teacher, student = _classifier(3), _classifier(4)
    model = DistillationModel(teacher, student, temperature=0.5)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = model.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)
    teacher_logits = _np(teacher(floats, training=False))
    student_logits = _np(student(floats, training=True))
    expected = float(_np(distillation_loss(teacher_logits, student_logits, 0.5)))
    assert expected > 0.1
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    agreement = np.mean(np.argmax(teacher_logits, axis=1) == np.argmax(student_logits, axis=1))
    np.testing.assert_allclose(history.history["teacher_agreement"][0], agreement)
    # The same through compute_loss on call(x, training=True).
    y_pred = model(images, training=True)
    np.testing.assert_allclose(
        float(_np(model.compute_loss(x=images, y_pred=y_pred))), expected, rtol=1e-5
    )


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_alpha_mixes_in_the_labelled_cross_entropy(alpha):
    images = _images(16, seed=5)
    floats = images.astype("float32") / 255.0
    labels = np.array([0, 1, 2, 3, -1, -1, 1, 0, 2, -1, 3, 3, -1, 0, 1, 2], "int32")
    teacher, student = _classifier(6, batchnorm=False), _classifier(7, batchnorm=False)
    model = DistillationModel(teacher, student, temperature=2.0, alpha=alpha)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = model.fit(images, labels, batch_size=16, epochs=1, verbose=0, shuffle=False)

    teacher_logits = _np(teacher(floats)).astype("float64")
    student_logits = _np(student(floats)).astype("float64")
    p_teacher = _softmax(teacher_logits / 2.0)
    log_student_t = np.log(_softmax(student_logits / 2.0))
    distill = np.mean(-(p_teacher * log_student_t).sum(axis=1))
    labelled = labels >= 0
    log_student = np.log(_softmax(student_logits))
    ce = np.mean(-log_student[labelled, labels[labelled]])
    expected = (1 - alpha) * distill + alpha * ce
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    accuracy = np.mean(np.argmax(student_logits[labelled], axis=1) == labels[labelled])
    np.testing.assert_allclose(history.history["accuracy"][0], accuracy, rtol=1e-6)

    # No y: distillation alone, whatever alpha; and no `accuracy` logged.
    history = model.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(history.history["loss"][0], distill, rtol=1e-5)
    assert "accuracy" not in history.history
    # A batch with no labelled example: the cross-entropy term is 0.
    y_pred = model(images, training=True)
    loss = model.compute_loss(x=images, y=np.full(16, -1, "int32"), y_pred=y_pred)
    np.testing.assert_allclose(float(_np(loss)), (1 - alpha) * distill, rtol=1e-5)


def test_predict_and_evaluate_give_the_student():
    images = _images(24, seed=8)
    floats = images.astype("float32") / 255.0
    labels = np.arange(24, dtype="int32") % 4
    teacher, student = _classifier(9), _classifier(10)
    model = DistillationModel(
        teacher,
        student,
        temperature=1.5,
        augmenter=RandomResizedCrop(SIZE, SIZE, scale=(0.3, 1.0), seed=1),
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    student_logits = _np(student(floats, training=False))
    np.testing.assert_allclose(model.predict(images, verbose=0), student_logits, atol=1e-5)
    np.testing.assert_allclose(_np(model(images)), student_logits, atol=1e-5)
    # evaluate(): un-augmented images, both models in inference mode.
    results = model.evaluate(images, labels, batch_size=24, verbose=0, return_dict=True)
    teacher_logits = _np(teacher(floats, training=False))
    np.testing.assert_allclose(
        results["loss"],
        float(_np(distillation_loss(teacher_logits, student_logits, 1.5))),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        results["accuracy"], np.mean(np.argmax(student_logits, axis=1) == labels)
    )
    np.testing.assert_allclose(
        results["teacher_agreement"],
        np.mean(np.argmax(student_logits, axis=1) == np.argmax(teacher_logits, axis=1)),
    )


def test_config_round_trip_and_keras_file(tmp_path):
    teacher = _classifier(11, name="teacher_net")
    student = _classifier(12, num_classes=4, batchnorm=False, name="student_net")
    model = DistillationModel(
        teacher,
        student,
        temperature=3.0,
        alpha=0.25,
        augmenter=RandomResizedCrop(SIZE, SIZE, horizontal_flip=True, seed=2),
        name="distiller",
    )
    images = _images(8, seed=13)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    model.fit(images, np.arange(8) % 4, batch_size=8, epochs=1, verbose=0)
    config = model.get_config()
    clone = DistillationModel.from_config(config)
    assert (clone.temperature, clone.alpha) == (3.0, 0.25)
    assert clone.augmenter.get_config() == model.augmenter.get_config()
    assert not clone.teacher.trainable and clone.student.trainable

    path = str(tmp_path / "distiller.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, DistillationModel)
    assert (loaded.temperature, loaded.alpha, loaded.name) == (3.0, 0.25, "distiller")
    assert loaded.teacher.name == "teacher_net" and not loaded.teacher.trainable
    assert loaded.augmenter.get_config() == model.augmenter.get_config()
    np.testing.assert_array_equal(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
    )
    floats = images.astype("float32") / 255.0
    np.testing.assert_array_equal(_np(loaded.teacher(floats)), _np(teacher(floats)))
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(_np(a), _np(b))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((4, SIZE, SIZE), "uint8"), f", {SIZE}, {SIZE})"),
        (np.zeros((4, SIZE, SIZE, 1), "uint8"), f", {SIZE}, {SIZE}, 1)"),
        (np.zeros((4, SIZE * SIZE * 3), "float32"), f", {SIZE * SIZE * 3})"),
    ],
)
def test_bad_images_name_what_was_received(x, match):
    model = DistillationModel(_classifier(0), _classifier(1))
    with pytest.raises(ValueError, match=r"x\.shape=\(4" + re.escape(match)):
        model(x)
    # In fit the batch size is not static.
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"x\.shape=\((4|None)" + re.escape(match)):
        model.fit(x, epochs=1, verbose=0)


def test_a_pair_of_views_is_rejected():
    model = DistillationModel(_classifier(0), _classifier(1))
    images = _images(4)
    with pytest.raises(ValueError, match=r"single batch of images.*Received: x.*\(4, 8, 8, 3\)"):
        model((images, images))


def test_mismatched_class_counts_are_rejected():
    with pytest.raises(ValueError, match=r"num_classes=10\), student.*num_classes=4\)"):
        DistillationModel(_classifier(0, num_classes=10), _classifier(1, num_classes=4))
    # Unbuilt models: checked when the model is built on the first batch.
    teacher = keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(3)], name="unbuilt_teacher"
    )
    student = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(5)])
    model = DistillationModel(teacher, student)
    with pytest.raises(ValueError, match=r"num_classes=3\), student.*num_classes=5\)"):
        model(_images(2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0}, "temperature=0"),
        ({"temperature": -0.5}, "temperature=-0.5"),
        ({"alpha": -0.1}, "alpha=-0.1"),
        ({"alpha": 1.5}, "alpha=1.5"),
        ({"alpha": float("nan")}, "alpha=nan"),
        ({"alpha": True}, "alpha=True"),
    ],
)
def test_hyperparameters_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        DistillationModel(_classifier(0), _classifier(1), **kwargs)


def test_bad_models_and_sample_weight_are_rejected():
    with pytest.raises(ValueError, match="teacher of type str"):
        DistillationModel("resnet", _classifier(1))
    same = _classifier(0)
    with pytest.raises(ValueError, match="same object"):
        DistillationModel(same, same)
    shared = keras.layers.Dense(4)
    teacher = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), shared])
    student = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), shared])
    with pytest.raises(ValueError, match="share weights"):
        DistillationModel(teacher, student)
    model = DistillationModel(_classifier(0), _classifier(1))
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="sample_weight of shape"):
        model.fit(_images(4), np.zeros(4, "int32"), sample_weight=np.ones(4), verbose=0)


@pytest.mark.process
def test_fits_on_the_jax_backend():
    out = run_in_subprocess(
        """
import numpy as np, keras
from keras_simclr.augment import RandomResizedCrop
from keras_simclr.losses.distillation import distillation_loss
from keras_simclr.models.distillation_model import DistillationModel
assert keras.backend.backend() == "jax"

def classifier(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(6, 3),
                             keras.layers.BatchNormalization(),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])

teacher, student = classifier(0), classifier(1)
# An unseeded augmenter: its random ops must take the layer's SeedGenerator
# inside the traced step.
model = DistillationModel(teacher, student, temperature=2.0, alpha=0.5,
                          augmenter=RandomResizedCrop(8, 8, horizontal_flip=True))
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(32, 8, 8, 3)).astype("uint8")
labels = (np.arange(32) % 5 - 1).astype("int32")  # some -1: unlabelled
before = [w.copy() for w in teacher.get_weights()]
student_before = [w.copy() for w in student.get_weights()]
model.compile(optimizer=keras.optimizers.SGD(0.5))
history = model.fit(images, labels, batch_size=16, epochs=2, verbose=0)
assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))
assert not all(np.allclose(a, b) for a, b in zip(student_before, student.get_weights()))
print("KEYS", *sorted(history.history))
print("LOSS", *history.history["loss"])
floats = images.astype("float32") / 255.0
results = model.evaluate(images, batch_size=32, verbose=0, return_dict=True)
expected = float(distillation_loss(teacher(floats), student(floats), 2.0))
print("EVAL", results["loss"], expected)
print("PREDICT", np.abs(model.predict(images, verbose=0) - np.asarray(student(floats))).max())
""",
        backend="jax",
    )
    assert out.split("KEYS")[1].split("\n")[0].split() == ["accuracy", "loss", "teacher_agreement"]
    losses = [float(v) for v in out.split("LOSS")[1].split("\n")[0].split()]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(0.1 < v < 5 for v in losses)
    got, expected = (float(v) for v in out.split("EVAL")[1].split("\n")[0].split())
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(out.split("PREDICT")[1].split()[0]) < 1e-5


def test_fit_refuses_float_images_in_0_255():
    import tensorflow as tf

    model = DistillationModel(_classifier(0), _classifier(1))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    floats = _images(16).astype("float32")
    floats[3, 1, 1, 1] = 255.0
    match = (
        r"Divide 0-255 float images by 255, or pass them as uint8.*x with dtype=float32.*max=255"
    )
    with pytest.raises(ValueError, match=match):
        model.fit(floats, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=match):
        model.fit(tf.data.Dataset.from_tensor_slices(floats).batch(8), verbose=0)
    with pytest.raises(ValueError, match=r"validation x with dtype=float32.*max=255"):
        model.fit(_images(16), batch_size=8, validation_data=(floats,), verbose=0)
    # uint8 and [0, 1] floats train.
    model.fit(floats / 255.0, batch_size=8, verbose=0)
    model.fit(tf.data.Dataset.from_tensor_slices(_images(16)).batch(8), verbose=0)
