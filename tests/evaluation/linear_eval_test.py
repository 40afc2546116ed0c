import keras
import numpy as np
import pytest

from keras_simclr.evaluation import fine_tune
from keras_simclr.evaluation import linear_evaluation
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import ResNet


def _toy_encoder():
    # Features = mean color per channel: a frozen, fixed encoder.
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, outputs)


def _separable_images(count, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=count)
    images = rng.uniform(0.0, 0.2, size=(count, 8, 8, 3)).astype("float32")
    images[np.arange(count), :, :, labels] += 0.7  # class = brightest channel
    return images, labels.astype("int32")


def test_linear_probe_separates_a_separable_toy_set():
    train, test = _separable_images(600, 0), _separable_images(300, 1)
    result = linear_evaluation(_toy_encoder(), train, test, num_classes=3, epochs=20, batch_size=64)
    assert result["top1"] >= 0.99
    assert result["top5"] == 1.0  # 3 classes: top-3 always holds the label
    assert result["train_loss"][-1] < result["train_loss"][0]


def _random_model(seed=0):
    keras.utils.set_random_seed(seed)
    return ContrastiveModel(
        encoder=ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=3, output_dim=16),
    )


@pytest.mark.slow
def test_linear_probe_on_random_init_features_beats_chance():
    from tests.conftest import decode_cifar

    train = decode_cifar("train", 2000)
    test = decode_cifar("test", 500)
    model = _random_model()
    result = linear_evaluation(model, train, test, num_classes=10, epochs=15)
    # Chance is 0.10 top-1 and 0.50 top-5 on CIFAR-10's balanced classes.
    assert result["top1"] > 0.2, result["top1"]
    assert result["top5"] > 0.6, result["top5"]
    # The encoder was frozen.
    assert all(
        np.array_equal(a, b)
        for a, b in zip(model.encoder.get_weights(), _random_model().encoder.get_weights())
    )


def _uint8_separable(count, seed):
    images, labels = _separable_images(count, seed)
    return (images * 255).astype("uint8"), labels


def test_float_images_in_0_255_are_refused():
    import tensorflow as tf

    (images, labels), test = _uint8_separable(32, 2), _uint8_separable(16, 3)
    floats = images.astype("float32")
    match = (
        r"Divide 0-255 float images by 255, or pass them as uint8"
        r".*{} images with dtype=float32.*max=2"
    )
    with pytest.raises(ValueError, match=match.format("train_data")):
        linear_evaluation(_toy_encoder(), (floats, labels), test, 3, epochs=1)
    with pytest.raises(ValueError, match=match.format("test_data")):
        linear_evaluation(_toy_encoder(), test, (floats, labels), 3, epochs=1)
    with pytest.raises(ValueError, match=match.format("train_data")):
        fine_tune(_toy_encoder(), (floats, labels), test, 3, epochs=1)
    # A dataset read only by fit (augment=True, no standardization): checked in tf.data.
    dataset = tf.data.Dataset.from_tensor_slices((floats, labels)).batch(8)
    with pytest.raises(ValueError, match=match.format("train_data")):
        linear_evaluation(_toy_encoder(), dataset, test, 3, epochs=1, standardize_features=False)
    with pytest.raises(ValueError, match=match.format("train_data")):
        fine_tune(_toy_encoder(), dataset, test, 3, epochs=1)


@pytest.mark.slow
def test_labels_outside_num_classes_are_refused():
    import tensorflow as tf

    (images, labels), test = _uint8_separable(32, 4), _uint8_separable(16, 5)
    labels = labels.copy()
    labels[[1, 2]] = [3, -2]
    match = r"{} labels values \[-2 3\] outside \[0, 3\), num_classes=3"
    with pytest.raises(ValueError, match=match.format("train_data")):
        linear_evaluation(_toy_encoder(), (images, labels), test, 3, epochs=1)
    with pytest.raises(ValueError, match=match.format("test_data")):
        linear_evaluation(_toy_encoder(), test, (images, labels), 3, epochs=1, augment=False)
    with pytest.raises(ValueError, match=match.format("train_data")):
        fine_tune(_toy_encoder(), (images, labels), test, 3, epochs=1)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    with pytest.raises(ValueError, match=match.format("train_data")):
        linear_evaluation(_toy_encoder(), dataset, test, 3, epochs=1, standardize_features=False)
    with pytest.raises(ValueError, match=match.format("train_data")):
        fine_tune(_toy_encoder(), dataset, test, 3, epochs=1)
    with pytest.raises(ValueError, match=match.format("test_data")):
        fine_tune(_toy_encoder(), test, dataset, 3, epochs=1)
