"""`build`: a named recipe's compiled model, optimizer, schedule and augmenter."""

import dataclasses

from keras_simclr.recipes.choices import resolve
from keras_simclr.recipes.choices import validate
from keras_simclr.recipes.schedules import learning_rate_for
from keras_simclr.recipes.schedules import warmup_cosine


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
            `projection_dim`, `micro_batch_size`, `memory_size` (0: none)
            and `memory_momentum` (`None` for MoCo v2).
    """

    model: object
    optimizer: object
    schedule: object
    augmenter: object
    settings: dict


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
    micro_batch_size=None,
    memory_size=None,
    memory_momentum=None,
):
    """Builds and compiles the model of a named recipe.

    Call it inside `strategy.scope()` to train under a distribution strategy
    (then pass `sync_batchnorm=True` for global BatchNorm statistics; MoCo
    keeps BatchNorm per replica and shuffles its keys instead). Call
    `keras.utils.set_random_seed(seed)` first for reproducible weights.

    More negatives for the memory (both off by default):

    - `micro_batch_size`: gradient caching (Gao et al., 2021). Each step
      encodes the batch in chunks of `micro_batch_size` images, computes
      the loss on the whole batch, then recomputes every chunk with the
      loss's gradient: the gradients of the full batch at the activation
      memory of one chunk, for about one more forward pass. BatchNorm
      normalizes each chunk alone, like per-replica BatchNorm, so
      `sync_batchnorm` is turned off. MoCo v2 chunks its queries (its
      keys need no gradient).
    - `memory_size` (`simclr`, `simclr_v2`): SimCLR v2's memory. A momentum copy of the encoder and
      head encodes every batch too, and its last `memory_size` projections
      are extra negatives. The paper uses 65536 with momentum 0.999; it is
      off here by default because the copy lags the model by about
      1 / (1 - momentum) = 1000 steps (a short run's memory holds stale
      negatives) and costs one more forward pass a step.

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
        micro_batch_size: gradient caching in chunks of this many images
            (must divide the batch on every replica); `None`: off.
        memory_size: SimCLR v2's memory: momentum projections kept as
            extra negatives, at least 2 x `batch_size`; `None` or 0: none.
            Not for `moco_v2` (see `queue_size`).
        memory_momentum: the memory's momentum encoder's moving-average
            momentum; `None`: 0.999. Only with a `memory_size`.

    Returns:
        a `Recipe`.

    Raises:
        ValueError: a choice out of its range (named, with what was
            received); `micro_batch_size` that does not divide `batch_size`,
            `memory_size` below 2 x `batch_size`, a memory with `moco_v2`,
            or `memory_momentum` without a memory; fewer training images
            than one batch.

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
        micro_batch_size=micro_batch_size,
        memory_size=memory_size,
        memory_momentum=memory_momentum,
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
    # Gradient caching normalizes each chunk alone: it refuses synchronized
    # BatchNorm, whose statistics would span the chunks of every replica.
    sync_batchnorm = sync_batchnorm and not moco and micro_batch_size is None
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
    if micro_batch_size is not None:  # MoCo v2 chunks its queries
        parts["micro_batch_size"] = micro_batch_size
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
        if resolved["memory_size"]:
            parts.update(
                memory_size=resolved["memory_size"], memory_momentum=resolved["memory_momentum"]
            )
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
        "micro_batch_size": micro_batch_size,
        "memory_size": resolved["memory_size"],
        "memory_momentum": resolved["memory_momentum"],
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
