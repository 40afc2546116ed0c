"""The encoder alone, without projection head, as a SavedModel and a .keras file.

TensorFlow is the point of this module (SavedModel); it is imported inside
the functions, and `keras_simclr.export` is imported lazily by the package.
"""

import json
import os

import keras
import numpy as np

from keras_simclr.models.resolve_encoder import resolve_encoder

METADATA_FILE = "keras_simclr.json"
KERAS_FILE = "encoder.keras"
SERVE_ENDPOINT = "serve"
IMAGE_SIZE_ENDPOINT = "image_size"


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "export_encoder writes a TensorFlow SavedModel and needs TensorFlow "
            "installed (on the JAX backend too: the encoder is converted with "
            "jax2tf). Without TensorFlow, save the encoder as a Keras file: "
            "encoder.save('encoder.keras')."
        ) from error
    return tf


def _track_tf_variables_once(archive):
    """Makes the archive's variable lists hold the tf.Variables themselves.

    On the TensorFlow backend `ExportArchive.track` lists the Keras variable
    wrappers while the endpoints capture the tf.Variables inside them, so
    the SavedModel would checkpoint every weight twice (twice the size on
    disk). Listing the tf.Variables keeps one copy; the reloaded `variables`
    are the same either way. Other backends already list tf.Variables.
    `add_variable_collection` (public) replaces a collection of the
    archive; the three default ones are replaced by their tf.Variables.
    """
    if keras.backend.backend() != "tensorflow":
        return
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        current = getattr(archive, name, None)
        if current is not None:
            archive.add_variable_collection(name, [getattr(v, "value", v) for v in current])


def _image_size(encoder, image_size):
    if image_size is None:
        shape = tuple(encoder.inputs[0].shape) if getattr(encoder, "inputs", None) else None
        if shape is None or len(shape) != 4 or None in shape[1:3]:
            raise ValueError(
                "The encoder's input size is not fixed; pass image_size=(H, W). "
                f"Received: image_size=None with encoder input shape {shape}"
            )
        image_size = shape[1:3]
    received = image_size
    if isinstance(image_size, (int, np.integer)):
        image_size = (image_size, image_size)
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size must be an int or a pair (H, W). Received: image_size={received}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive. Received: image_size={received}")
    return height, width


def export_encoder(model_or_encoder, path, image_size=None):
    """Writes the encoder, without the projection head, as a SavedModel at `path`.

    `path` becomes a TensorFlow SavedModel holding the encoder's variables
    only (no projection head, probe or optimizer variables) with two
    endpoints:

    - `serve`: float32 images in [0, 1], shape `(batch, H, W, 3)`, to
      float32 features h, BatchNorm in inference mode. It is also the
      `serving_default` signature (TF Serving).
    - `image_size`: no input; returns the int32 tensor `[H, W]`.

    Beside the SavedModel's own files, `path` holds `encoder.keras` (the
    encoder as a Keras file, for `keras.saving.load_model`, e.g. to
    fine-tune it with its BatchNorm in training mode) and `keras_simclr.json`
    (`image_size`, `feature_dim`, endpoint name). Reload with `load_encoder`,
    `keras.layers.TFSMLayer(path, call_endpoint="serve")` or
    `tf.saved_model.load(path).serve(images)`.

    Works on the TensorFlow and the JAX backend. On JAX,
    `keras.export.ExportArchive` converts the encoder's function with
    `jax.experimental.jax2tf` (part of `jax`; it needs TensorFlow installed,
    nothing else) and stores the variables as TensorFlow variables, so the
    result reloads in TensorFlow like a TensorFlow export. (A JAX-exported
    SavedModel computes with an `XlaCallModule` op; it runs on CPU and GPU
    in TensorFlow.)

    Args:
        model_or_encoder: a `ContrastiveModel` (anything with an `.encoder`
            that is a `keras.Model`; only the encoder is exported) or an
            encoder `keras.Model`.
        path: output directory (written over if it exists).
        image_size: `(H, W)` or an int; `None` takes it from the encoder's
            input shape, which must then be fixed.

    Returns:
        the metadata dict written to `keras_simclr.json`.

    Example:

    ```python
    export_encoder(model, "runs/encoder")
    encoder = keras_simclr.export.load_encoder("runs/encoder")
    features = encoder(images)  # float32 images in [0, 1]
    ```
    """
    encoder = resolve_encoder(model_or_encoder, caller="export_encoder")
    tf = _import_tensorflow()
    height, width = _image_size(encoder, image_size)
    input_shape = (None, height, width, 3)
    if not encoder.built:
        encoder(np.zeros((1, height, width, 3), "float32"), training=False)
    output_shape = tuple(encoder.compute_output_shape(input_shape))
    if len(output_shape) != 2:
        raise ValueError(
            "The encoder must map images to features of shape (batch, F). "
            f"Received: output shape {output_shape} for input shape {input_shape}"
        )
    feature_dim = None if output_shape[-1] is None else int(output_shape[-1])

    def serve(images):
        return keras.ops.cast(encoder(images, training=False), "float32")

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    _track_tf_variables_once(archive)
    # Added first: `serve` is also the `serving_default` signature.
    archive.add_endpoint(
        SERVE_ENDPOINT,
        serve,
        input_signature=[keras.InputSpec(shape=input_shape, dtype="float32")],
    )
    # A traced tf.function is added as it is on every backend (no jax2tf).
    size_fn = tf.function(lambda: tf.constant([height, width], tf.int32), input_signature=[])
    size_fn.get_concrete_function()
    archive.add_endpoint(IMAGE_SIZE_ENDPOINT, size_fn)
    archive.write_out(path, verbose=False)

    encoder.save(os.path.join(path, KERAS_FILE))
    metadata = {
        "image_size": [height, width],
        "feature_dim": feature_dim,
        "encoder": encoder.name,
        "endpoint": SERVE_ENDPOINT,
        "input": "float32 images in [0, 1], shape (batch, H, W, 3)",
        "keras_file": KERAS_FILE,
        "backend": keras.backend.backend(),
    }
    with open(os.path.join(path, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2)
    return metadata


def load_export_metadata(path):
    """Reads what `export_encoder` recorded about an export.

    Returns:
        dict with at least `image_size` (`[H, W]`), from `keras_simclr.json`,
        or, when that file is missing, from the SavedModel's `image_size`
        endpoint.

    Example:

    ```python
    height, width = load_export_metadata("runs/encoder")["image_size"]
    ```
    """
    metadata_path = os.path.join(path, METADATA_FILE)
    if os.path.exists(metadata_path):
        with open(metadata_path) as f:
            return json.load(f)
    loaded = _import_tensorflow().saved_model.load(path)
    if not hasattr(loaded, IMAGE_SIZE_ENDPOINT):
        raise ValueError(
            f"{path} is not an export_encoder export: it has neither "
            f"{METADATA_FILE} nor an `{IMAGE_SIZE_ENDPOINT}` endpoint. "
            f"Received: path={path}"
        )
    return {"image_size": [int(v) for v in loaded.image_size().numpy()]}


def load_encoder(path, trainable=False, format="auto"):
    """Reloads an exported encoder as a callable Keras layer.

    Args:
        path: a directory written by `export_encoder`.
        trainable: whether the reloaded weights are trainable (default
            frozen, for features and linear heads). Fine-tuning the
            SavedModel keeps its BatchNorm in inference mode (it has only
            the `serve` endpoint); to fine-tune with BatchNorm in training
            mode use `format="keras"`.
        format: `"saved_model"`: `keras.layers.TFSMLayer(path,
            call_endpoint="serve")` (TensorFlow backend only; needs no
            keras-simclr code). `"keras"`: the `encoder.keras` model via
            `keras.saving.load_model` (any backend). `"auto"`: the
            SavedModel on the TensorFlow backend, the `.keras` file on
            the others.

    Returns:
        a Keras layer mapping float32 images in [0, 1], `(batch, H, W, 3)`,
        to features; its input size is in `load_export_metadata(path)`.

    Example:

    ```python
    encoder = load_encoder("runs/encoder")
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(10)(encoder(inputs))
    classifier = keras.Model(inputs, outputs)
    ```
    """
    if format not in ("auto", "saved_model", "keras"):
        raise ValueError(
            f"format must be 'auto', 'saved_model' or 'keras'. Received: format={format!r}"
        )
    if not os.path.isdir(path):
        raise ValueError(f"No export found: {path} is not a directory. Received: path={path}")
    backend = keras.backend.backend()
    if format == "auto":
        format = "saved_model" if backend == "tensorflow" else "keras"
    if format == "saved_model":
        if backend != "tensorflow":
            raise ValueError(
                "keras.layers.TFSMLayer (format='saved_model') needs the "
                "TensorFlow backend; use format='keras' on this backend, or "
                "tf.saved_model.load(path).serve(images) in TensorFlow. "
                f"Received: format='saved_model' on the {backend} backend"
            )
        return keras.layers.TFSMLayer(path, call_endpoint=SERVE_ENDPOINT, trainable=trainable)
    # The encoder's classes (e.g. keras_simclr.models.ResNet) must be registered.
    import keras_simclr.models  # noqa: F401

    encoder = keras.saving.load_model(os.path.join(path, KERAS_FILE))
    encoder.trainable = trainable
    return encoder
