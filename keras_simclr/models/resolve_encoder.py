"""The encoder of a contrastive model, or the encoder itself."""

import keras


def resolve_encoder(model_or_encoder, caller="extract_features"):
    """Returns the encoder of a `ContrastiveModel`-like object or the model itself.

    Anything with an `.encoder` attribute that is a `keras.Model` (e.g.
    `ContrastiveModel`, `MoCoModel`) gives that encoder; a `keras.Model` is
    used as it is. The evaluations and `export_encoder` take either, through
    this function.

    Args:
        model_or_encoder: a model with an `.encoder` `keras.Model`, or an
            encoder `keras.Model`.
        caller: the name of the calling function, for the error message.

    Returns:
        the encoder `keras.Model`.

    Raises:
        ValueError: anything else, naming `caller` and the type received.

    Example:

    ```python
    encoder = resolve_encoder(model)  # model.encoder
    assert resolve_encoder(encoder) is encoder
    ```
    """
    encoder = getattr(model_or_encoder, "encoder", None)
    if isinstance(encoder, keras.Model):
        return encoder
    if isinstance(model_or_encoder, keras.Model):
        return model_or_encoder
    raise ValueError(
        f"{caller} takes an encoder `keras.Model` or a model with an "
        "`.encoder` attribute that is a `keras.Model` (e.g. ContrastiveModel). "
        f"Received: {type(model_or_encoder).__name__}"
    )
