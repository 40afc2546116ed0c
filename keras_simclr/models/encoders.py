"""Encoders by name, as the command line and notebooks ask for them."""

from keras_simclr.models.resnet import ResNet

KERAS_HUB_PREFIX = "keras_hub:"
KERAS_APPLICATIONS_PREFIX = "keras_applications:"

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


def check_encoder(name, width_multiplier=None):
    """Raises `ValueError` naming a model `create_encoder` cannot build, before any work.

    Checks the name (`ENCODERS`, `keras_hub:<preset>` with keras-hub
    installed and a known preset, handle or existing directory,
    `keras_applications:<name>`) and that `width_multiplier` is only given
    to our own ResNets. Nothing is downloaded or built.

    Args:
        name: as `create_encoder`'s.
        width_multiplier: as `create_encoder`'s.
    """
    name = name if isinstance(name, str) else repr(name)
    if name.startswith((KERAS_HUB_PREFIX, KERAS_APPLICATIONS_PREFIX)):
        if width_multiplier is not None:
            raise ValueError(
                "width_multiplier applies to the built-in ResNets only; a keras_hub: or "
                "keras_applications: backbone has its own width (pick another preset or "
                f"model). Received: width_multiplier={width_multiplier}, model={name!r}"
            )
        if name.startswith(KERAS_HUB_PREFIX):
            from keras_simclr.models.keras_hub_encoder import check_keras_hub_preset

            check_keras_hub_preset(name[len(KERAS_HUB_PREFIX) :])
        else:
            from keras_simclr.models.applications_encoder import check_application_name

            check_application_name(name[len(KERAS_APPLICATIONS_PREFIX) :])
        return
    if name not in ENCODERS:
        raise ValueError(
            f"Unknown model; known models: {', '.join(sorted(ENCODERS))}, "
            "keras_hub:<preset or directory>, keras_applications:<name>. "
            f"Received: model={name!r}"
        )
    if width_multiplier is not None and not width_multiplier > 0:
        raise ValueError(
            "width_multiplier must be a positive number (None keeps the model's own). "
            f"Received: width_multiplier={width_multiplier}"
        )


def create_encoder(name, image_size, width_multiplier=None, sync_batchnorm=False, **kwargs):
    """Builds a named encoder for square images of side `image_size` in [0, 1].

    Three kinds of names:

    - one of `ENCODERS`: our ResNet (`resnet18_cifar`: CIFAR stem,
      `resnet50`, `resnet50_2x`: width 2, ...).
    - `"keras_hub:<preset>"`: a keras-hub image backbone
      (`keras_hub.models.Backbone.from_preset`), e.g.
      `keras_hub:resnet_50_imagenet` (downloaded on first use), a
      `kaggle://` or `hf://` handle, or a local preset directory (offline;
      `backbone.save_to_preset(dir)` writes one). Its feature map is
      average-pooled and the preset's `ImageConverter` scaling is put in
      front (see `keras_hub_encoder`). Needs `pip install
      keras-simclr[hub]`.
    - `"keras_applications:<name>"`: `keras.applications.<name>` with
      `include_top=False, pooling="avg"` and the family's
      `preprocess_input` done on [0, 1] images (see
      `applications_encoder`), e.g. `keras_applications:ResNet50`,
      `keras_applications:MobileNetV3Small`. Random weights by default:
      pass `weights="imagenet"` for the ImageNet ones (Keras downloads
      them into `~/.keras/models` on first use).

    Every kind maps float32 images in [0, 1], `(batch, image_size,
    image_size, 3)`, to features `(batch, F)`, and exports and reloads the
    same way.

    Args:
        name: the model's name, as above.
        image_size: image side in pixels.
        width_multiplier: overrides a named ResNet's width (e.g. 0.25 for
            quick runs), > 0; `None` keeps it. Backbones have their own
            width and refuse it.
        sync_batchnorm: global BatchNorm statistics under a `tf.distribute`
            strategy; accepted on JAX, where they are global already under
            `keras.distribution.DataParallel` (see `ResNet`). A backbone's
            BatchNorm layers are rebuilt synchronized
            (`synchronize_batchnorm`).
        **kwargs: forwarded to `ResNet`, `keras_hub.models.Backbone.from_preset`
            or the `keras.applications` constructor (e.g. `weights=`).

    Returns:
        a `ResNet`, or a functional `keras.Model` holding the backbone.

    Raises:
        ValueError: an unknown `name` or preset, a preset whose weights
            could not be fetched (no network: pass a local directory), a
            `width_multiplier` that is not a positive number (0 does not
            mean the default: pass None) or given to a backbone.
        ImportError: a `keras_hub:` name without keras-hub installed.

    Example:

    ```python
    encoder = create_encoder("resnet18_cifar", 32)
    encoder = create_encoder("keras_applications:MobileNetV3Small", 32)
    encoder = create_encoder("keras_hub:/data/presets/resnet_18", 32)
    ```
    """
    if isinstance(name, str) and name.startswith(KERAS_HUB_PREFIX):
        if width_multiplier is not None:
            check_encoder(name, width_multiplier)
        from keras_simclr.models.keras_hub_encoder import keras_hub_encoder

        preset = name[len(KERAS_HUB_PREFIX) :]
        return keras_hub_encoder(preset, image_size, sync_batchnorm=sync_batchnorm, **kwargs)
    check_encoder(name, width_multiplier)
    if name.startswith(KERAS_APPLICATIONS_PREFIX):
        from keras_simclr.models.applications_encoder import applications_encoder

        application = name[len(KERAS_APPLICATIONS_PREFIX) :]
        return applications_encoder(
            application, image_size, sync_batchnorm=sync_batchnorm, **kwargs
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
