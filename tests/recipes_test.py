import math
import re

import keras
import numpy as np
import pytest

from keras_simclr import models
from keras_simclr import optimizers
from keras_simclr import recipes

SMALL = dict(batch_size=64, epochs=10, train_examples=650, width_multiplier=0.125)


def test_simclr_v2_has_a_three_layer_head_and_simclr_settings():
    keras.utils.set_random_seed(0)
    recipe = recipes.simclr_v2(image_size=32, **SMALL)
    assert type(recipe.model) is models.ContrastiveModel
    assert recipe.model.projection_head.num_layers == 3
    assert isinstance(recipe.optimizer, optimizers.LARS)
    assert recipe.model.optimizer is recipe.optimizer
    assert recipe.augmenter is recipe.model.augmenter
    # 650 // 64 = 10 steps per epoch; warmup 10% of 10 epochs = 1 epoch.
    assert recipe.settings == {
        "preset": "cifar",
        "temperature": 0.5,
        "peak_learning_rate": 0.3 * 64 / 256,
        "warmup_steps": 10,
        "total_steps": 100,
        "steps_per_epoch": 10,
        "optimizer": "lars",
        "weight_decay": 1e-6,
        "head_layers": 3,
        "projection_dim": 128,
        "micro_batch_size": None,
        "memory_size": 0,
        "memory_momentum": 0.999,
    }


def test_moco_v2_uses_sgd_its_temperature_and_its_augmentation_at_any_size():
    recipe = recipes.moco_v2(image_size=96, queue_size=128, **SMALL)
    assert type(recipe.model) is models.MoCoModel
    assert isinstance(recipe.optimizer, keras.optimizers.SGD)
    assert recipe.model.temperature == 0.2 and recipe.settings["preset"] == "moco_v2"
    assert recipe.settings["peak_learning_rate"] == pytest.approx(0.03 * 64 / 256)
    assert recipe.optimizer.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "image_size, preset, temperature",
    [(32, "cifar", 0.5), (64, "cifar", 0.5), (96, "imagenet", 0.1)],
)
def test_simclr_preset_and_temperature_follow_the_image_size(image_size, preset, temperature):
    resolved = recipes.resolve("simclr", image_size)
    assert (resolved["augmentation"], resolved["temperature"]) == (preset, temperature)
    # An explicit choice wins over the size rule.
    assert recipes.resolve("simclr", image_size, temperature=0.3)["temperature"] == 0.3


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_zero():
    recipe = recipes.simclr(image_size=32, warmup_epochs=2, **SMALL)
    schedule = recipe.schedule
    peak, warmup, total = 0.075, 20, 100
    for step in (0, 5, 20, 60, 100):
        expected = (
            peak * step / warmup
            if step < warmup
            else peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        )
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "scaling, expected", [("linear", 0.3 * 1024 / 256), ("sqrt", 0.3 * 32.0), ("none", 0.3)]
)
def test_learning_rate_scaling(scaling, expected):
    assert recipes.learning_rate_for(0.3, 1024, scaling) == pytest.approx(expected)


@pytest.mark.parametrize(
    "overrides, received",
    [
        ({"temperature": 0.0}, "temperature=0.0"),
        ({"learning_rate": -1.0}, "learning_rate=-1.0"),
        ({"momentum": 1.0}, "momentum=1.0"),
        ({"encoder": "resnet19"}, "model='resnet19'"),
        ({"optimizer": "adam"}, "optimizer='adam'"),
        ({"batch_size": 1024}, "batch_size=1024, train_examples=650"),
    ],
)
def test_bad_choices_are_named(overrides, received):
    arguments = dict(SMALL, image_size=32, **overrides)
    with pytest.raises(ValueError, match=received):
        recipes.build("simclr", **arguments)


@pytest.mark.parametrize(
    "method, overrides, received",
    [
        ("simclr", {"micro_batch_size": 0}, "micro_batch_size=0"),
        ("simclr", {"micro_batch_size": 48}, "micro_batch_size=48, batch_size=64"),
        ("simclr", {"micro_batch_size": 8.0}, "micro_batch_size=8.0"),
        ("simclr_v2", {"memory_size": -1}, "memory_size=-1"),
        ("simclr_v2", {"memory_size": 100}, "memory_size=100, batch_size=64"),
        ("simclr", {"memory_size": 128, "memory_momentum": 1.0}, "memory_momentum=1.0"),
        ("simclr_v2", {"memory_momentum": 0.99}, "memory_momentum=0.99, memory_size=None"),
        (
            "moco_v2",
            {"memory_size": 256},
            "queue_size. Received: method='moco_v2', memory_size=256",
        ),
        ("moco_v2", {"memory_momentum": 0.99}, "method='moco_v2', memory_momentum=0.99"),
    ],
)
def test_bad_chunk_and_memory_choices_are_named(method, overrides, received):
    arguments = dict(SMALL, image_size=32, queue_size=128, **overrides)
    with pytest.raises(ValueError, match=re.escape(received)):
        recipes.build(method, **arguments)


def test_defaults_keep_the_model_config_and_need_no_chunks_or_memory():
    # A fresh session each: the same automatic layer names.
    keras.backend.clear_session()
    plain = recipes.simclr(image_size=32, **SMALL).model
    keras.backend.clear_session()
    explicit = recipes.simclr(
        image_size=32, micro_batch_size=None, memory_size=None, memory_momentum=None, **SMALL
    ).model
    config = plain.get_config()
    assert config == explicit.get_config()
    assert config["micro_batch_size"] is None and config["memory_size"] == 0
    assert plain.momentum_encoder is None
    # A MoCo recipe has no memory settings either.
    moco = recipes.moco_v2(image_size=32, queue_size=128, **SMALL)
    assert moco.model.micro_batch_size is None
    assert (moco.settings["memory_size"], moco.settings["memory_momentum"]) == (0, None)
    # MoCo v2 chunks its queries.
    chunked = recipes.moco_v2(image_size=32, queue_size=128, micro_batch_size=16, **SMALL)
    assert chunked.model.micro_batch_size == 16 and chunked.settings["micro_batch_size"] == 16


@pytest.mark.parametrize("method", ["simclr", "simclr_v2"])
def test_micro_batch_size_and_memory_reach_the_model(method):
    recipe = recipes.build(
        method, image_size=32, micro_batch_size=16, memory_size=256, memory_momentum=0.99, **SMALL
    )
    model = recipe.model
    assert (model.micro_batch_size, model.memory_size, model.memory_momentum) == (16, 256, 0.99)
    assert model.get_config()["micro_batch_size"] == 16
    settings = recipe.settings
    assert (settings["micro_batch_size"], settings["memory_size"]) == (16, 256)
    assert settings["memory_momentum"] == 0.99
    # The paper's momentum when only the size is given.
    assert recipes.build(method, image_size=32, memory_size=128, **SMALL).model.memory_momentum == (
        0.999
    )


def _synchronized_batchnorms(model):
    model.build((None, 32, 32, 3))
    layers = [*model.encoder._flatten_layers(), *model.projection_head._flatten_layers()]
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    return {bool(layer.synchronized) for layer in norms}


def test_micro_batch_size_turns_batchnorm_synchronization_off():
    # Each chunk normalizes alone: synchronized statistics would span them.
    synced = recipes.simclr(image_size=32, sync_batchnorm=True, **SMALL).model
    assert _synchronized_batchnorms(synced) == {True}
    chunked = recipes.simclr(image_size=32, sync_batchnorm=True, micro_batch_size=16, **SMALL)
    assert _synchronized_batchnorms(chunked.model) == {False}


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="method='byol'"):
        recipes.build("byol", image_size=32, **SMALL)


# Backbones have their own width: no width_multiplier.
BACKBONE_SMALL = dict(batch_size=64, epochs=10, train_examples=650)


@pytest.mark.parametrize(
    "overrides, received",
    [
        ({"encoder": "keras_applications:ResNet9"}, "model='keras_applications:ResNet9'"),
        ({"encoder": "keras_hub:resnet_9000"}, "Unknown keras-hub preset.*'keras_hub:resnet_9000'"),
        (
            {"encoder": "keras_applications:MobileNet", "width_multiplier": 0.25},
            "built-in ResNets only.*width_multiplier=0.25",
        ),
    ],
)
def test_bad_backbone_names_are_refused_before_any_work(overrides, received):
    pytest.importorskip("keras_hub")
    with pytest.raises(ValueError, match=received):
        recipes.validate("simclr", **overrides)


def test_a_keras_applications_backbone_builds_in_a_recipe():
    recipe = recipes.build(
        "simclr_v2", image_size=32, encoder="keras_applications:MobileNet", **BACKBONE_SMALL
    )
    model = recipe.model
    model.build((None, 32, 32, 3))
    assert model.encoder.name == "keras_applications_mobilenet"
    # MobileNet (alpha 1): 1024 features into the 3-layer head.
    assert model.projection_head.dense_layers[0].kernel.shape[0] == 1024


def test_a_local_keras_hub_preset_builds_a_moco_recipe(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    from tests.models.backbone_encoder_test import tiny_resnet_backbone

    path = str(tmp_path / "preset")
    tiny_resnet_backbone(image_shape=(None, None, 3)).save_to_preset(path)
    recipes.validate("moco_v2", encoder="keras_hub:" + path, queue_size=4096)
    recipe = recipes.moco_v2(image_size=32, encoder="keras_hub:" + path, **BACKBONE_SMALL)
    recipe.model.build((None, 32, 32, 3))
    assert recipe.model.encoder.output.shape == (None, 32)
    assert isinstance(recipe.model.encoder.layers[1], keras_hub.models.ResNetBackbone)
