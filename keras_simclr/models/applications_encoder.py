"""Encoders from `keras.applications`: `create_encoder("keras_applications:<name>", ...)`."""

import importlib

import keras
import numpy as np

from keras_simclr.models.input_scaling import InputScaling

PREFIX = "keras_applications:"


def application_names():
    """The model constructors of `keras.applications` (`ResNet50`, `MobileNetV3Small`, ...)."""
    return sorted(
        name
        for name in dir(keras.applications)
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


def check_application_name(name):
    """Raises `ValueError` for a name that is not a `keras.applications` model."""
    if name not in application_names():
        raise ValueError(
            f"Unknown keras.applications model; known: {', '.join(application_names())}. "
            f"Received: model={PREFIX + name!r}"
        )


def application_scaling(name):
    """An `InputScaling` doing the model's `preprocess_input` on [0, 1] images.

    Each `keras.applications` family has its own `preprocess_input` for
    0-255 pixels ("caffe": BGR minus the ImageNet mean; "torch": ImageNet
    mean and std; "tf": [-1, 1]; none for the models that scale inside,
    e.g. EfficientNet, ConvNeXt, MobileNetV3). Each is a per-channel affine
    map (after a channel reversal for caffe); it is read off the family's
    own function by calling it on a black image and on one image per
    channel, and checked on a grey image.

    Args:
        name: a `keras.applications` model name, e.g. `"ResNet50"`.

    Returns:
        an `InputScaling` for images in [0, 1].
    """
    check_application_name(name)
    module = importlib.import_module(getattr(keras.applications, name).__module__)
    preprocess = module.preprocess_input
    probes = np.zeros((5, 1, 1, 3), "float32")
    for channel in range(3):
        probes[1 + channel, 0, 0, channel] = 255.0
    probes[4] = 128.0
    out = np.asarray(preprocess(probes.copy()), "float64")[:, 0, 0, :]
    offset = out[0]
    response = out[1:4] - offset  # response[i, c]: output channel c to input channel i
    source = np.argmax(np.abs(response), axis=0)  # the input channel of each output
    reverse = list(source) == [2, 1, 0]
    scale = response[source, np.arange(3)]
    expected = probes[4, 0, 0, source] / 255.0 * scale + offset
    if not (list(source) in ([0, 1, 2], [2, 1, 0]) and np.allclose(out[4], expected, atol=1e-3)):
        raise ValueError(
            f"keras.applications.{module.__name__.rsplit('.', 1)[-1]}.preprocess_input is not "
            f"a per-channel affine map. Received: model={PREFIX + name!r}"
        )
    return InputScaling(scale=scale, offset=offset, reverse_channels=reverse, name="input_scaling")


def applications_encoder(name, image_size, weights=None, sync_batchnorm=False, **kwargs):
    """An encoder from a `keras.applications` model, taking images in [0, 1].

    Builds `keras.applications.<name>(include_top=False, pooling="avg",
    weights=weights, input_shape=(image_size, image_size, 3), **kwargs)`
    behind an `InputScaling` layer that does the model's own
    `preprocess_input` on [0, 1] images (`application_scaling`), so
    pretrained weights see what they were trained on.

    Args:
        name: a `keras.applications` model name (`"ResNet50"`,
            `"MobileNetV3Small"`, `"EfficientNetB0"`, ...).
        image_size: the side of the square images (each model has its own
            minimum, e.g. 32).
        weights: `None` (random initialization, the default) or
            `"imagenet"` for the ImageNet weights (downloaded by Keras on
            first use into `~/.keras/models`; offline, copy the file there
            or pass its path as `weights`).
        sync_batchnorm: rebuild the model's BatchNorm synchronized across
            replicas (TensorFlow; see `synchronize_batchnorm`).
        **kwargs: forwarded to the constructor (e.g. `alpha=0.5`).

    Returns:
        a functional `keras.Model` from images in [0, 1] to pooled features.

    Raises:
        ValueError: an unknown name, arguments the model refuses (e.g. an
            image size below its minimum), or weights that could not be
            fetched.

    Example:

    ```python
    encoder = applications_encoder("MobileNetV3Small", 32)
    ```
    """
    from keras_simclr.models.backbone_encoder import pooled_encoder
    from keras_simclr.models.backbone_encoder import synchronize_batchnorm
    from keras_simclr.models.keras_hub_encoder import encoder_name

    check_application_name(name)
    model = PREFIX + name
    constructor = getattr(keras.applications, name)
    arguments = dict(include_top=False, pooling="avg", weights=weights)
    arguments.update(input_shape=(image_size, image_size, 3), **kwargs)
    try:
        backbone = constructor(**arguments)
    except ValueError as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"keras.applications.{name} refused its arguments: {reason} "
            f"Received: model={model!r}, image_size={image_size}"
        ) from None
    except Exception as error:  # a failed download of the weights
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise ValueError(
            f"The weights of keras.applications.{name} could not be fetched (no network? "
            f"{reason}). Copy the weights file into ~/.keras/models or pass its local path as "
            f"weights=..., or leave weights=None. Received: model={model!r}, weights={weights!r}"
        ) from error
    if sync_batchnorm:
        backbone = synchronize_batchnorm(backbone)
    return pooled_encoder(
        backbone,
        image_size=image_size,
        preprocessing=application_scaling(name),
        name=encoder_name(model),
    )
