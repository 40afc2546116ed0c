"""Encoders by name, as the command line and notebooks ask for them."""

from keras_simclr.models.resnet import ResNet

# name: (depth, width multiplier, CIFAR stem)
ENCODERS = {
    "resnet18_cifar": (18, 1, True),
    "resnet34_cifar": (34, 1, True),
    "resnet50_cifar": (50, 1, True),
    "resnet18": (18, 1, False),
    "resnet34": (34, 1, False),
    "resnet50": (50, 1, False),
    "resnet50_2x": (50, 2, False),
    "resnet50_4x": (50, 4, False),
    "resnet101": (101, 1, False),
    "resnet101_2x": (101, 2, False),
    "resnet152": (152, 1, False),
    "resnet152_2x": (152, 2, False),
    "resnet152_3x": (152, 3, False),
}


def create_encoder(name, image_size, width_multiplier=None, sync_batchnorm=False, **kwargs):
    """Builds a named ResNet encoder for square images of side `image_size`.

    Args:
        name: one of `ENCODERS`: `resnet18_cifar` (CIFAR stem), `resnet50`,
            `resnet50_2x` (width 2), ...
        image_size: image side in pixels.
        width_multiplier: overrides the named model's width (e.g. 0.25 for
            quick runs), > 0; `None` keeps it.
        sync_batchnorm: global BatchNorm statistics under a `tf.distribute`
            strategy; accepted on JAX, where they are global already under
            `keras.distribution.DataParallel` (see `ResNet`).
        **kwargs: forwarded to `ResNet`.

    Returns:
        a `ResNet`.

    Raises:
        ValueError: an unknown `name`, or a `width_multiplier` that is not a
            positive number (0 does not mean the default: pass None).

    Example:

    ```python
    encoder = create_encoder("resnet18_cifar", 32)
    ```
    """
    if name not in ENCODERS:
        raise ValueError(
            f"Unknown model {name!r}; known models: {', '.join(sorted(ENCODERS))}. "
            f"Received: model={name!r}"
        )
    depth, width, cifar_stem = ENCODERS[name]
    return ResNet(
        depth=depth,
        # ResNet refuses 0 and negative widths; only None means the default.
        width_multiplier=width if width_multiplier is None else width_multiplier,
        cifar_stem=cifar_stem,
        input_shape=(image_size, image_size, 3),
        sync_batchnorm=sync_batchnorm,
        name=name,
        **kwargs,
    )
