"""fine_tune: a trained copy of the encoder and head, saved and reloaded."""

import json
import zipfile

import keras
import numpy as np
import pytest

from keras_simclr.evaluation import fine_tune
from keras_simclr.evaluation.fine_tune_model import FineTuneModel
from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models import ResNet


def _random_model(seed=0):
    keras.utils.set_random_seed(seed)
    return ContrastiveModel(
        encoder=ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=3, output_dim=16),
    )


@pytest.mark.slow
def test_fine_tune_from_the_first_head_layer_trains_a_copy(cifar_images, tmp_path):
    images, labels = cifar_images
    model = _random_model()
    before = [w.copy() for w in model.encoder.get_weights()]
    result = fine_tune(
        model,
        (images[:192], labels[:192]),
        (images[192:], labels[192:]),
        10,
        ft_proj_selector=1,
        epochs=2,
        batch_size=64,
    )
    tuned = result["model"]
    # Input -> crop -> encoder -> first head layer (64 wide) -> classifier.
    assert tuned.get_layer("classifier").kernel.shape == (64, 10)
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert result["train_loss"][-1] < result["train_loss"][0]
    for a, b in zip(before, model.encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The fine-tuned model saves and reloads (e.g. as a distillation teacher).
    path = str(tmp_path / "fine_tuned.keras")
    tuned.save(path)
    restored = keras.saving.load_model(path)
    assert restored.head_layers == 1
    np.testing.assert_allclose(
        restored.predict(images[192:], verbose=0),
        tuned.predict(images[192:], verbose=0),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="ft_proj_selector=3"):
        fine_tune(model, (images, labels), (images, labels), 10, ft_proj_selector=3)
    # A file written when the classes were private (`_FineTuneModel`,
    # `_RandomCropFlip`) loads into the same model.
    legacy = str(tmp_path / "legacy.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(legacy, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                text = data.decode()
                assert "keras_simclr>FineTuneModel" in text
                for name in ("FineTuneModel", "RandomCropFlip"):
                    text = text.replace(f'"{name}"', f'"_{name}"')
                    text = text.replace(f'"keras_simclr>{name}"', f'"keras_simclr>_{name}"')
                assert json.loads(text)["registered_name"] == "keras_simclr>_FineTuneModel"
                data = text.encode()
            target.writestr(item, data)
    old = keras.saving.load_model(legacy)
    assert isinstance(old, FineTuneModel)
    np.testing.assert_array_equal(
        old.predict(images[192:], verbose=0), restored.predict(images[192:], verbose=0)
    )


@pytest.mark.slow
def test_classifier_width_follows_the_kept_head_layers():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 32, 32, 3)).astype("uint8")
    labels = rng.integers(0, 3, size=16).astype("int32")
    keras.utils.set_random_seed(0)
    model = ContrastiveModel(
        encoder=ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3)),
        projection_head=ProjectionHead(num_layers=3, hidden_dim=24, output_dim=16),
    )
    widths = {}
    for selector in (0, 2):
        tuned = fine_tune(
            model,
            (images, labels),
            (images, labels),
            3,
            ft_proj_selector=selector,
            epochs=1,
            batch_size=8,
        )["model"]
        widths[selector] = tuple(tuned.get_layer("classifier").kernel.shape)
    # h is 64 wide (ResNet-18 x0.125); the head's hidden layers are 24 wide.
    assert widths == {0: (64, 3), 2: (24, 3)}
