"""Any Keras image backbone as an encoder: images in [0, 1] to pooled features."""

import keras


def pooled_encoder(backbone, image_size=None, preprocessing=None, name=None):
    """Wraps an image backbone into an encoder: images in [0, 1] to features `(batch, F)`.

    The encoder is a functional `keras.Model`: `preprocessing` (when given),
    then `backbone`, then a global average pool when the backbone's output
    is a feature map `(batch, H, W, C)` (a keras-hub image backbone such as
    `keras_hub.models.ResNetBackbone`) or a sequence of tokens
    `(batch, T, C)`; a backbone that already pools (a `keras.applications`
    model built with `include_top=False, pooling="avg"`) keeps its
    features. `ContrastiveModel` and `MoCoModel` apply it themselves to an
    encoder whose output is a feature map; build it yourself to add the
    preprocessing pretrained weights need, or use
    `create_encoder("keras_hub:<preset>" | "keras_applications:<name>", ...)`,
    which does both.

    The backbone is held as a layer: its class, config and weights are
    saved in `.keras` files and `export_encoder` exports, and its weights
    train with the contrastive model.

    Args:
        backbone: a `keras.Model` taking one batch of RGB images
            `(batch, H, W, 3)` (channels last).
        image_size: the side of the square input images, or `(H, W)`;
            `None` takes the backbone's own input shape (which may leave
            `H` and `W` unknown; `export_encoder` then needs its
            `image_size`).
        preprocessing: a layer mapping [0, 1] images to the backbone's
            input scale (e.g. `InputScaling`), or `None` to feed the [0, 1]
            images as they are (right for a backbone trained from scratch).
        name: the encoder's name; `None`: the backbone's name + `_pooled`.

    Returns:
        a functional `keras.Model` from float images in [0, 1] to features.

    Raises:
        ValueError: `backbone` is not a `keras.Model` with one image input,
            or its output is not one tensor of rank 2, 3 or 4; an
            `image_size` the backbone's fixed input size does not accept.

    Example:

    ```python
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[16], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[16, 32], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block",
    )
    encoder = keras_simclr.models.pooled_encoder(backbone, image_size=32)
    encoder(np.zeros((2, 32, 32, 3))).shape  # (2, 32)
    ```
    """
    if not isinstance(backbone, keras.Model):
        raise ValueError(
            "pooled_encoder takes a keras.Model backbone. "
            f"Received: backbone of type {type(backbone).__name__}"
        )
    inputs = keras.Input(_image_shape(backbone, image_size), name="images")
    x = inputs if preprocessing is None else preprocessing(inputs)
    x = backbone(x)
    if not hasattr(x, "shape") or len(x.shape) not in (2, 3, 4):
        raise ValueError(
            "pooled_encoder needs a backbone whose output is one tensor: features "
            "(batch, F), tokens (batch, T, C) or a feature map (batch, H, W, C). "
            f"Received: backbone {backbone.name!r} with output {_describe(x)}"
        )
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif len(x.shape) == 3:
        x = keras.layers.GlobalAveragePooling1D(name="avg_pool")(x)
    return keras.Model(inputs, x, name=name or f"{backbone.name}_pooled")


def as_feature_encoder(encoder):
    """`pooled_encoder(encoder)` when `encoder` outputs a feature map, else `encoder`.

    What `ContrastiveModel` and `MoCoModel` do with the encoder they are
    given: a functional model whose output has rank 4 (or 3: tokens) is
    pooled; anything else (an unbuilt subclassed model, a model that
    already outputs `(batch, F)`) is used as it is.
    """
    outputs = getattr(encoder, "outputs", None) if isinstance(encoder, keras.Model) else None
    if not outputs or len(outputs) != 1 or len(outputs[0].shape) not in (3, 4):
        return encoder
    return pooled_encoder(encoder)


def synchronize_batchnorm(backbone):
    """A copy of `backbone` whose BatchNorm layers are `synchronized=True` (TensorFlow).

    Under a `tf.distribute` strategy with several replicas, synchronized
    BatchNorm normalizes with the statistics of the global batch, which
    SimCLR needs (a replica's own statistics leak which images share it).
    A backbone's config does not say how its BatchNorm layers are built,
    so the functional graph is cloned (`keras.models.clone_model`, nested
    models too) with every `BatchNormalization` rebuilt from its config
    with `synchronized=True`, and the weights are copied. The copy is a
    plain functional model of the same layers (a keras-hub backbone loses
    its class, e.g. `save_to_preset`, not its weights or computation). On
    other backends the backbone is returned as it is: under
    `keras.distribution.DataParallel` (JAX) the step already sees the
    global batch.

    Args:
        backbone: a functional `keras.Model`.

    Returns:
        the synchronized copy, or `backbone` when it has no BatchNorm or the
        backend is not TensorFlow.
    """
    batchnorms = [
        layer
        for layer in backbone._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if keras.backend.backend() != "tensorflow" or not batchnorms:
        return backbone

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(backbone, clone_function=clone, recursive=True)
    copy.set_weights(backbone.get_weights())
    return copy


def _image_shape(backbone, image_size):
    inputs = getattr(backbone, "inputs", None)
    shape = tuple(inputs[0].shape[1:]) if inputs and len(inputs) == 1 else None
    if shape is None or len(shape) != 3 or shape[-1] != 3:
        raise ValueError(
            "pooled_encoder needs a backbone with one input, a batch of RGB images "
            "(batch, H, W, 3), channels last (is it an image backbone?). "
            f"Received: backbone {backbone.name!r} with inputs "
            f"{[tuple(i.shape) for i in inputs] if inputs else inputs}"
        )
    if image_size is None:
        return shape
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    for fixed, wanted in zip(shape[:2], size):
        if fixed is not None and fixed != wanted:
            raise ValueError(
                f"The backbone {backbone.name!r} takes images of size {shape[:2]} only. "
                f"Received: image_size={image_size}"
            )
    return (*size, 3)


def _describe(x):
    if isinstance(x, dict):
        return "a dict of " + ", ".join(f"{k}: {tuple(v.shape)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return f"{len(x)} tensors"
    return f"shape {tuple(getattr(x, 'shape', ()))}"
