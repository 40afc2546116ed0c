"""Pretraining recipes: the papers' settings from a few choices.

A recipe turns what a user knows (the method, the image size, the batch size,
the number of epochs and training images) into a compiled model: encoder,
projection head, augmentation, loss temperature, optimizer and a warmup +
cosine learning-rate schedule, with each paper's defaults. The command line
(`keras-simclr pretrain`), the benchmarks and the examples all build their
models here, so a notebook gets exactly the CLI's training.

- `simclr`: a 2-layer head; LARS (weight decay 1e-6) at 0.3 x batch / 256;
  temperature 0.5 and the CIFAR augmentation for images up to 64 px, 0.1 and
  the ImageNet augmentation above.
- `simclr_v2`: as `simclr` with a 3-layer head.
- `moco_v2`: a 2-layer head, momentum encoder and queue; SGD (weight decay
  1e-4) at 0.03 x batch / 256; temperature 0.2; the MoCo v2 augmentation.

Warmup: 10% of the epochs, at most 10; then cosine decay to 0 at the last
step. Every default can be overridden by its argument.

References:
- [Chen et al., 2020a. A Simple Framework for Contrastive Learning of Visual
  Representations](https://arxiv.org/abs/2002.05709)
- [Chen et al., 2020b. Big Self-Supervised Models are Strong Semi-Supervised
  Learners](https://arxiv.org/abs/2006.10029)
- [Chen et al., 2020c. Improved Baselines with Momentum Contrastive
  Learning](https://arxiv.org/abs/2003.04297)
"""

import dataclasses
import math

METHODS = ("simclr", "simclr_v2", "moco_v2")
OPTIMIZERS = ("lars", "sgd", "adamw")
AUGMENTATIONS = ("auto", "cifar", "imagenet", "moco_v2")
LEARNING_RATE_SCALINGS = ("linear", "sqrt", "none")

# Images up to this side use the CIFAR augmentation and temperature.
SMALL_IMAGE_SIZE = 64


@dataclasses.dataclass
class Recipe:
    """What `build` made: a compiled model and the numbers it chose.

    Attributes:
        model: the compiled `ContrastiveModel` (or `MoCoModel`); call `fit`.
        optimizer: its optimizer (LARS, SGD or AdamW).
        schedule: the warmup + cosine `keras.optimizers.schedules.CosineDecay`.
        augmenter: the `SimCLRAugmentation` the model draws its views with.
        settings: the resolved choices by name: `preset`, `temperature`,
            `peak_learning_rate`, `warmup_steps`, `total_steps`,
            `steps_per_epoch`, `optimizer`, `weight_decay`, `head_layers`,
            `projection_dim`.
    """

    model: object
    optimizer: object
    schedule: object
    augmenter: object
    settings: dict


def learning_rate_for(base, batch_size, scaling="linear"):
    """SimCLR's learning-rate scaling with the batch size.

    Args:
        base: the base learning rate.
        batch_size: the global batch size.
        scaling: `"linear"` (base * batch / 256), `"sqrt"` (base * sqrt(batch))
            or `"none"` (base).

    Example:

    >>> learning_rate_for(0.3, 1024)
    1.2
    """
    if scaling == "linear":
        return base * batch_size / 256.0
    if scaling == "sqrt":
        return base * math.sqrt(batch_size)
    return base


def warmup_cosine(peak, total_steps, warmup_steps):
    """A linear warmup from 0 to `peak`, then cosine decay to 0 at `total_steps`.

    Args:
        peak: the learning rate at the end of the warmup.
        total_steps: the steps of the whole run.
        warmup_steps: the warmup's steps (0: start at `peak`).

    Returns:
        a `keras.optimizers.schedules.CosineDecay`.
    """
    import keras

    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def resolve(method="simclr", image_size=None, **choices):
    """The method's defaults filled in for every choice left `None`.

    Args:
        method: one of `METHODS`.
        image_size: the image side (decides the augmentation preset and the
            temperature); may be `None` when neither is needed.
        **choices: any of `build`'s keyword arguments; `None` takes the
            method's default.

    Returns:
        a dict with `optimizer`, `weight_decay`, `head_layers`,
        `learning_rate` (the base, before scaling) and, with an
        `image_size`, `augmentation` (the preset) and `temperature`, plus the
        other choices as given.

    Example:

    >>> resolve("moco_v2", 32)["temperature"]
    0.2
    """
    _check_choice("method", method, METHODS)
    moco = method == "moco_v2"
    resolved = dict(choices)
    defaults = {
        "optimizer": "sgd" if moco else "lars",
        "weight_decay": 1e-4 if moco else 1e-6,
        "head_layers": 3 if method == "simclr_v2" else 2,
    }
    for name, value in defaults.items():
        if resolved.get(name) is None:
            resolved[name] = value
    if resolved.get("learning_rate") is None:
        resolved["learning_rate"] = (
            1e-3 if resolved["optimizer"] == "adamw" else 0.03 if moco else 0.3
        )
    if image_size is not None:
        preset = resolved.get("augmentation") or "auto"
        if preset == "auto":
            preset = (
                "moco_v2" if moco else "cifar" if image_size <= SMALL_IMAGE_SIZE else "imagenet"
            )
        resolved["augmentation"] = preset
        if resolved.get("temperature") is None:
            resolved["temperature"] = 0.2 if moco else 0.5 if preset == "cifar" else 0.1
    return resolved


def _check_choice(name, value, known):
    if value not in known:
        raise ValueError(f"Unknown {name}; known: {', '.join(known)}. Received: {name}={value!r}")


def validate(method="simclr", **choices):
    """Raises `ValueError` naming the first bad choice (before any work).

    `build` calls it; call it yourself to check choices before loading data.

    Args:
        method: one of `METHODS`.
        **choices: `build`'s keyword arguments (unknown ones are ignored).
    """
    from keras_simclr.models import check_encoder

    defaults = dict(encoder="resnet18_cifar", batch_size=256, epochs=100, momentum=0.9)
    defaults.update(augmentation="auto", learning_rate_scaling="linear", queue_size=65536)
    c = {**defaults, **choices}
    encoder, batch_size, momentum = c["encoder"], c["batch_size"], c["momentum"]
    _check_choice("method", method, METHODS)
    check_encoder(encoder)
    _check_choice("augmentation", c["augmentation"] or "auto", AUGMENTATIONS)
    _check_choice("learning_rate_scaling", c["learning_rate_scaling"], LEARNING_RATE_SCALINGS)
    if c.get("optimizer") is not None:
        _check_choice("optimizer", c["optimizer"], OPTIMIZERS)
    for name, value in (("batch_size", batch_size), ("epochs", c["epochs"])):
        if value < 1:
            raise ValueError(f"{name} must be positive. Received: {name}={value}")
    width = c.get("width_multiplier")
    if width is not None and not width > 0:
        raise ValueError(
            "width_multiplier must be > 0 (None keeps the model's own). "
            f"Received: width_multiplier={width}"
        )
    check_encoder(encoder, width)  # a keras_hub: / keras_applications: backbone refuses it
    for name in ("learning_rate", "weight_decay", "warmup_epochs"):
        value = c.get(name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0. Received: {name}={value}")
    if c.get("learning_rate") == 0:
        raise ValueError("learning_rate must be > 0. Received: learning_rate=0.0")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum}")
    if method == "moco_v2" and c["queue_size"] < batch_size:
        raise ValueError(
            "queue_size must hold at least one global batch of keys. Received: "
            f"queue_size={c['queue_size']}, batch_size={batch_size}"
        )
    temperature = c.get("temperature")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")


def build(
    method="simclr",
    *,
    image_size,
    batch_size,
    epochs,
    train_examples,
    encoder="resnet18_cifar",
    width_multiplier=None,
    num_classes=None,
    seed=0,
    temperature=None,
    augmentation="auto",
    learning_rate=None,
    learning_rate_scaling="linear",
    optimizer=None,
    momentum=0.9,
    weight_decay=None,
    warmup_epochs=None,
    projection_dim=128,
    head_layers=None,
    queue_size=65536,
    moco_momentum=0.999,
    shuffle_bn_splits=8,
    sync_batchnorm=False,
    steps_per_execution=1,
):
    """Builds and compiles the model of a named recipe.

    Call it inside `strategy.scope()` to train under a distribution strategy
    (then pass `sync_batchnorm=True` for global BatchNorm statistics; MoCo
    keeps BatchNorm per replica and shuffles its keys instead). Call
    `keras.utils.set_random_seed(seed)` first for reproducible weights.

    Args:
        method: `"simclr"` (v1), `"simclr_v2"` (3-layer head) or `"moco_v2"`
            (momentum encoder and a queue of negative keys).
        image_size: the side of the (square) training images.
        batch_size: the global batch size (scales the learning rate).
        epochs: the epochs the schedule is planned for.
        train_examples: the number of training images (steps per epoch =
            `train_examples // batch_size`; the last partial batch is dropped).
        encoder: a name from `keras_simclr.models.ENCODERS`,
            `"keras_hub:<preset or directory>"` or `"keras_applications:<name>"`
            (see `keras_simclr.models.create_encoder`).
        width_multiplier: overrides a named ResNet's width (e.g. 0.25).
        num_classes: trains an online linear probe on labelled batches; `None`
            for none.
        seed: seeds the augmentation (and MoCo's key shuffling).
        temperature: the loss temperature; `None`: the method's default.
        augmentation: `"auto"`, `"cifar"`, `"imagenet"` or `"moco_v2"`.
        learning_rate: the base learning rate before scaling; `None`: 0.3
            (LARS, SGD), 0.03 (MoCo v2), 1e-3 (AdamW).
        learning_rate_scaling: `"linear"` (base * batch / 256), `"sqrt"` or
            `"none"`.
        optimizer: `"lars"`, `"sgd"` or `"adamw"`; `None`: the method's.
        momentum: LARS / SGD momentum.
        weight_decay: `None`: 1e-4 for MoCo v2, else 1e-6.
        warmup_epochs: linear warmup epochs; `None`: 10% of `epochs`, at most
            10.
        projection_dim: the projection head's output width.
        head_layers: the projection head's layers; `None`: the method's.
        queue_size: MoCo: negative keys in the queue.
        moco_momentum: MoCo: the key encoder's moving-average momentum.
        shuffle_bn_splits: MoCo: BatchNorm groups the keys are shuffled into.
        sync_batchnorm: global BatchNorm statistics across replicas.
        steps_per_execution: passed to `compile`.

    Returns:
        a `Recipe`.

    Example:

    ```python
    import keras
    from keras_simclr import recipes

    keras.utils.set_random_seed(0)
    recipe = recipes.build(
        "simclr", image_size=32, batch_size=256, epochs=100, train_examples=50000,
        width_multiplier=0.25,
    )
    recipe.model.fit(images, batch_size=256, epochs=100)  # uint8 images
    ```
    """
    import keras

    from keras_simclr import augment
    from keras_simclr import models
    from keras_simclr import optimizers

    choices = dict(
        encoder=encoder,
        batch_size=batch_size,
        epochs=epochs,
        width_multiplier=width_multiplier,
        temperature=temperature,
        augmentation=augmentation,
        learning_rate=learning_rate,
        learning_rate_scaling=learning_rate_scaling,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        queue_size=queue_size,
        head_layers=head_layers,
    )
    validate(method, **choices)
    steps_per_epoch = train_examples // batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            "The batch size is larger than the training set: not one full batch per epoch. "
            f"Received: batch_size={batch_size}, train_examples={train_examples}"
        )
    resolved = resolve(method, image_size, **choices)
    moco = method == "moco_v2"
    # MoCo keeps BatchNorm per replica and shuffles the keys into groups
    # instead: synchronized statistics would leak across the groups.
    sync_batchnorm = sync_batchnorm and not moco
    parts = dict(
        encoder=models.create_encoder(
            encoder,
            image_size,
            width_multiplier=width_multiplier,
            sync_batchnorm=sync_batchnorm,
        ),
        projection_head=models.ProjectionHead(
            num_layers=resolved["head_layers"],
            output_dim=projection_dim,
            sync_batchnorm=sync_batchnorm,
        ),
        augmenter=augment.SimCLRAugmentation(
            image_size, preset=resolved["augmentation"], seed=seed
        ),
        temperature=resolved["temperature"],
        num_classes=num_classes,
        name=method,
    )
    augmenter = parts["augmenter"]
    if moco:
        model = models.MoCoModel(
            **parts,
            queue_size=queue_size,
            momentum=moco_momentum,
            shuffle_bn_splits=shuffle_bn_splits,
            seed=seed,
        )
    else:
        model = models.ContrastiveModel(**parts)
    peak = learning_rate_for(resolved["learning_rate"], batch_size, learning_rate_scaling)
    total_steps = epochs * steps_per_epoch
    warmup = warmup_epochs if warmup_epochs is not None else min(10.0, 0.1 * epochs)
    warmup_steps = min(int(round(warmup * steps_per_epoch)), total_steps - 1)
    schedule = warmup_cosine(peak, total_steps, warmup_steps)
    weight_decay = resolved["weight_decay"]
    if resolved["optimizer"] == "lars":
        optimizer = optimizers.LARS(schedule, momentum=momentum, weight_decay=weight_decay)
    elif resolved["optimizer"] == "sgd":
        # Keras's decoupled weight decay (None when 0).
        optimizer = keras.optimizers.SGD(
            schedule, momentum=momentum, weight_decay=weight_decay or None
        )
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    model.compile(optimizer=optimizer, steps_per_execution=steps_per_execution)
    settings = {
        "preset": resolved["augmentation"],
        "temperature": resolved["temperature"],
        "peak_learning_rate": peak,
        "warmup_steps": warmup_steps,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "optimizer": resolved["optimizer"],
        "weight_decay": weight_decay,
        "head_layers": resolved["head_layers"],
        "projection_dim": projection_dim,
    }
    return Recipe(model, optimizer, schedule, augmenter, settings)


def simclr(**kwargs):
    """`build("simclr", ...)`: SimCLR v1 (Chen et al., 2020a)."""
    return build("simclr", **kwargs)


def simclr_v2(**kwargs):
    """`build("simclr_v2", ...)`: SimCLR v2's 3-layer head (Chen et al., 2020b)."""
    return build("simclr_v2", **kwargs)


def moco_v2(**kwargs):
    """`build("moco_v2", ...)`: MoCo v2 (Chen et al., 2020c)."""
    return build("moco_v2", **kwargs)
