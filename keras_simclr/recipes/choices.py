"""The recipes' choices: the known names, each method's defaults, and their checks."""

import math
import numbers

METHODS = ("simclr", "simclr_v2", "moco_v2")
OPTIMIZERS = ("lars", "sgd", "adamw")
AUGMENTATIONS = ("auto", "cifar", "imagenet", "moco_v2")
LEARNING_RATE_SCALINGS = ("linear", "sqrt", "none")

# Images up to this side use the CIFAR augmentation and temperature.
SMALL_IMAGE_SIZE = 64

# SimCLR v2's memory: the momentum copy's moving-average momentum (the paper's).
MEMORY_MOMENTUM = 0.999


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
        `learning_rate` (the base, before scaling), `memory_size` (0: no
        memory), `memory_momentum` (`None` for MoCo v2, which has no
        memory) and, with an `image_size`, `augmentation` (the preset) and
        `temperature`, plus the other choices as given.

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
        "memory_size": 0,
        "memory_momentum": None if moco else MEMORY_MOMENTUM,
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

    Raises:
        ValueError: an unknown name (method, encoder, augmentation,
            optimizer, scaling), a number out of its range, or choices that
            do not go together (see `build`'s Raises).
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
    _check_micro_batch_size(c.get("micro_batch_size"), batch_size)
    _check_memory(method, c.get("memory_size"), c.get("memory_momentum"), batch_size)


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_micro_batch_size(micro_batch_size, batch_size):
    if micro_batch_size is None:
        return
    if not (_is_integer(micro_batch_size) and micro_batch_size >= 1):
        raise ValueError(
            "micro_batch_size must be a positive integer (None: no gradient caching). "
            f"Received: micro_batch_size={micro_batch_size!r}"
        )
    if batch_size % micro_batch_size:
        raise ValueError(
            "micro_batch_size must divide the batch size: the batch is encoded in "
            f"chunks of micro_batch_size images. Received: micro_batch_size={micro_batch_size}, "
            f"batch_size={batch_size}"
        )


def _check_memory(method, memory_size, memory_momentum, batch_size):
    if method == "moco_v2":
        # MoCo's queue and key encoder are its own: --queue_size, --moco_momentum.
        given = {"memory_size": bool(memory_size), "memory_momentum": memory_momentum is not None}
        for name, value, own in (
            ("memory_size", memory_size, "queue_size"),
            ("memory_momentum", memory_momentum, "moco_momentum"),
        ):
            if given[name]:
                raise ValueError(
                    f"{name} is SimCLR v2's memory of negatives (simclr, simclr_v2); moco_v2 "
                    f"keeps its own queue and key encoder: use {own}. Received: "
                    f"method='moco_v2', {name}={value}"
                )
        return
    if memory_size is not None and not (_is_integer(memory_size) and memory_size >= 0):
        raise ValueError(
            "memory_size must be an integer >= 0 (0: no memory). "
            f"Received: memory_size={memory_size!r}"
        )
    if memory_size and memory_size < 2 * batch_size:
        raise ValueError(
            "memory_size must hold at least one step's momentum projections, 2 x the "
            "global batch size (both views of every image). Received: "
            f"memory_size={memory_size}, batch_size={batch_size}"
        )
    if memory_momentum is None:
        return
    if not (math.isfinite(memory_momentum) and 0 <= memory_momentum < 1):
        raise ValueError(
            f"memory_momentum must be in [0, 1). Received: memory_momentum={memory_momentum}"
        )
    if not memory_size:
        raise ValueError(
            "memory_momentum moves the memory's momentum encoder: it needs memory_size > 0. "
            f"Received: memory_momentum={memory_momentum}, memory_size={memory_size}"
        )
