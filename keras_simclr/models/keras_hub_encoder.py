"""Encoders from keras-hub presets: `create_encoder("keras_hub:<preset>", ...)`.

keras-hub is an optional dependency (`pip install keras-simclr[hub]`): it
is imported here, inside the functions, only when a keras-hub backbone is
asked for.
"""

import importlib.util
import os

import numpy as np

PREFIX = "keras_hub:"

# Shown when a preset name is unknown (keras_hub.models.Backbone.presets has all).
EXAMPLE_PRESETS = (
    "resnet_18_imagenet",
    "resnet_50_imagenet",
    "resnet_vd_34_imagenet",
    "efficientnet_b0_ra_imagenet",
    "mobilenet_v3_small_050_imagenet",
    "densenet_121_imagenet",
)


def _import_keras_hub(model):
    if importlib.util.find_spec("keras_hub") is None:
        raise ImportError(
            "A keras_hub: model needs keras-hub: pip install keras-simclr[hub] "
            f"(or pip install keras-hub). Received: model={model!r}"
        )
    import keras_hub

    return keras_hub


def _is_handle_or_directory(preset):
    return "://" in preset or os.path.isdir(os.path.expanduser(preset))


def _looks_like_path(preset):
    return (
        os.sep in preset
        or preset.startswith((".", "~"))
        or (os.altsep is not None and os.altsep in preset)
    )


def check_keras_hub_preset(preset):
    """Raises `ValueError` naming a preset that cannot be loaded, before any work.

    Accepted: a built-in preset name (`keras_hub.models.Backbone.presets`),
    a Kaggle / Hugging Face / ModelScope handle (`kaggle://...`, `hf://...`,
    checked when it is loaded) and an existing local preset directory.

    Raises:
        ValueError: keras-hub is not installed (`pip install
            keras-simclr[hub]`), an empty name, a path that is not a
            directory, or an unknown preset name.
    """
    model = PREFIX + preset
    if importlib.util.find_spec("keras_hub") is None:
        raise ValueError(
            "A keras_hub: model needs keras-hub: pip install keras-simclr[hub] "
            f"(or pip install keras-hub). Received: model={model!r}"
        )
    if not preset:
        raise ValueError(
            "keras_hub: needs a preset name, handle or local directory "
            f"(e.g. keras_hub:resnet_18_imagenet). Received: model={model!r}"
        )
    if _is_handle_or_directory(preset):
        return
    if _looks_like_path(preset):
        raise ValueError(
            "The keras-hub preset directory does not exist (a local preset is a directory "
            f"written by backbone.save_to_preset(dir)). Received: model={model!r}"
        )
    keras_hub = _import_keras_hub(model)
    if preset not in keras_hub.models.Backbone.presets:
        raise ValueError(
            "Unknown keras-hub preset; image backbone presets include "
            f"{', '.join(EXAMPLE_PRESETS)} (keras_hub.models.Backbone.presets lists all), "
            "or give a kaggle:// or hf:// handle or a local preset directory. "
            f"Received: model={model!r}"
        )


def keras_hub_encoder(preset, image_size, sync_batchnorm=False, name=None, **kwargs):
    """An encoder from a keras-hub image backbone preset, taking images in [0, 1].

    `keras_hub.models.Backbone.from_preset(preset, **kwargs)` loads the
    backbone (its config and weights; a built-in name or a Kaggle / Hugging
    Face handle downloads them on first use, then reads keras-hub's cache);
    the preset's `ImageConverter` (`image_converter.json`), when it has one,
    gives the input scaling its weights were trained with (`pixels * scale +
    offset` on 0-255 pixels), which becomes an `InputScaling` layer in front
    of the backbone for [0, 1] images. A preset without a converter (e.g. a
    directory written by `backbone.save_to_preset(dir)` alone; add
    `converter.save_to_preset(dir)` to keep one) feeds the [0, 1] images as
    they are. The feature map is average-pooled (`pooled_encoder`).

    Args:
        preset: a built-in preset name (`resnet_50_imagenet`), a handle
            (`kaggle://keras/resnetv2/keras/resnet_50_imagenet`,
            `hf://...`) or a local preset directory (works offline).
        image_size: the side of the square images.
        sync_batchnorm: rebuild the backbone's BatchNorm synchronized
            across replicas (TensorFlow; see `synchronize_batchnorm`).
        name: the encoder's name; `None`: `keras_hub_` + the preset's name.
        **kwargs: forwarded to `Backbone.from_preset` (e.g.
            `load_weights=False`).

    Returns:
        a functional `keras.Model` from `(batch, image_size, image_size, 3)`
        images in [0, 1] to pooled features.

    Raises:
        ImportError: keras-hub is not installed.
        ValueError: an unknown preset, or weights that could not be fetched
            (no network), each naming the preset and saying how to pass a
            local directory; a preset that is not an image backbone.

    Example:

    ```python
    encoder = keras_hub_encoder("resnet_18_imagenet", 224)
    ```
    """
    from keras_simclr.models.backbone_encoder import pooled_encoder
    from keras_simclr.models.backbone_encoder import synchronize_batchnorm

    model = PREFIX + preset
    keras_hub = _import_keras_hub(model)
    check_keras_hub_preset(preset)
    local = os.path.isdir(os.path.expanduser(preset))
    location = os.path.expanduser(preset) if local else preset
    try:
        backbone = keras_hub.models.Backbone.from_preset(location, **kwargs)
    except Exception as error:  # network, cache and file errors alike
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        if local:
            raise ValueError(
                f"Could not load the keras-hub preset directory ({type(error).__name__}: "
                f"{reason}). Received: model={model!r}"
            ) from error
        raise ValueError(
            "The keras-hub preset's config and weights could not be fetched (no network? "
            f"{type(error).__name__}: {reason}). Without network, pass a local preset "
            "directory: --model keras_hub:/path/to/dir (Python: "
            "create_encoder('keras_hub:/path/to/dir', ...)), written where the network "
            f"works by keras_hub.models.Backbone.from_preset({preset!r}).save_to_preset(dir). "
            f"Received: model={model!r}"
        ) from error
    preprocessing = _converter_scaling(keras_hub, location)
    if sync_batchnorm:
        backbone = synchronize_batchnorm(backbone)
    try:
        return pooled_encoder(
            backbone,
            image_size=image_size,
            preprocessing=preprocessing,
            name=name or encoder_name(model),
        )
    except ValueError as error:
        raise ValueError(f"{error}; Received: model={model!r}") from None


def _converter_scaling(keras_hub, preset):
    """The preset's `ImageConverter` scaling for [0, 1] images, or `None` without one."""
    from keras_simclr.models.input_scaling import InputScaling

    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except (FileNotFoundError, ValueError):
        return None
    scale = 1.0 if converter.scale is None else _array(converter.scale)
    offset = 0.0 if converter.offset is None else _array(converter.offset)
    # The converter takes 0-255 pixels; ours are in [0, 1].
    return InputScaling(
        scale=np.asarray(scale, "float64") * 255.0,
        offset=offset,
        name="input_scaling",
    )


def _array(value):
    # A converter saved with NumPy values reloads them as serialized dicts.
    if isinstance(value, dict):
        import keras

        value = keras.saving.deserialize_keras_object(dict(value))
    return np.asarray(value, "float64")


def encoder_name(model):
    """A valid Keras name for a `keras_hub:` / `keras_applications:` model name."""
    base = model.rstrip("/\\")
    prefix, _, rest = base.partition(":")
    rest = os.path.basename(rest) or rest
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in f"{prefix}_{rest}")
    return cleaned.lower()
