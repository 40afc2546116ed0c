"""The encoder alone, without projection head, as a SavedModel and a .keras file."""

import json
import os

import keras

METADATA = "keras_simclr.json"
KERAS_FILE = "encoder.keras"


def _encoder_of(model_or_encoder):
    encoder = getattr(model_or_encoder, "encoder", None)
    if isinstance(encoder, keras.Model):
        return encoder
    if isinstance(model_or_encoder, keras.Model):
        return model_or_encoder
    raise ValueError(
        "export_encoder takes a ContrastiveModel (anything with an `.encoder` "
        "keras.Model) or an encoder keras.Model. "
        f"Received: {type(model_or_encoder).__name__}"
    )


def export_encoder(model_or_encoder, path, image_size=None):
    """Writes the encoder, without the projection head, to `path`.

    `path` becomes a TensorFlow SavedModel whose `serve` endpoint maps
    float32 images in [0, 1], shape `(batch, H, W, 3)`, to float32 features
    h (BatchNorm in inference mode). Beside the SavedModel's own files it
    holds `encoder.keras` (the Keras encoder, for `keras.saving.load_model`)
    and `keras_simclr.json` (image size and feature width). Works from the
    TensorFlow and the JAX backend (the JAX function is converted with
    `jax2tf`; TensorFlow must be installed).

    Args:
        model_or_encoder: a `ContrastiveModel` (its `.encoder` is exported)
            or an encoder `keras.Model`.
        path: output directory.
        image_size: `(H, W)` or int; `None`: the encoder's input size.

    Returns:
        the metadata dict written to `keras_simclr.json`.

    Example:

    ```python
    export_encoder(model, "runs/encoder")
    features = keras.layers.TFSMLayer("runs/encoder", call_endpoint="serve")(images)
    ```
    """
    encoder = _encoder_of(model_or_encoder)
    if image_size is None:
        image_size = tuple(encoder.inputs[0].shape[1:3]) if encoder.inputs else (None, None)
        if None in image_size:
            raise ValueError(
                "The encoder's input size is not fixed; pass image_size. "
                f"Received: image_size=None, encoder input {encoder.inputs[0].shape}"
            )
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = (int(v) for v in image_size)

    def serve(images):
        return keras.ops.cast(encoder(images, training=False), "float32")

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    kwargs = {"is_static": True} if keras.backend.backend() == "jax" else {}
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[keras.InputSpec(shape=(None, height, width, 3), dtype="float32")],
        **kwargs,
    )
    archive.write_out(path, verbose=False)
    encoder.save(os.path.join(path, KERAS_FILE))
    metadata = {
        "image_size": [height, width],
        "feature_dim": int(encoder.outputs[0].shape[-1]) if encoder.outputs else None,
        "encoder": encoder.name,
        "endpoint": "serve",
        "input": "float32 images in [0, 1], shape (batch, H, W, 3)",
    }
    with open(os.path.join(path, METADATA), "w") as f:
        json.dump(metadata, f, indent=2)
    return metadata


def load_encoder(path):
    """Reloads an exported encoder as a Keras layer (`TFSMLayer`, endpoint `serve`).

    Returns:
        `(layer, metadata)`: the layer maps float32 images in [0, 1] to
        features; metadata holds `image_size` and `feature_dim`.
    """
    with open(os.path.join(path, METADATA)) as f:
        metadata = json.load(f)
    return keras.layers.TFSMLayer(path, call_endpoint="serve"), metadata
