"""`embed`: an encoder's features of every image of a folder, streamed to a file.

The images are listed by `keras_simclr.data.find_images` (any layout: flat,
nested, or one sub-folder per class, which gives labels), checked, decoded
and resized as training decodes them, scaled to float32 in [0, 1] and encoded
batch by batch in listing order, and each batch is written out
(`keras_simclr.embedding_writers`) before the next is decoded: memory does
not grow with the folder.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import keras
import numpy as np

from keras_simclr.data.image_check import BadImagesError
from keras_simclr.data.image_check import inspect_images
from keras_simclr.data.image_check import warn_bad_images
from keras_simclr.data.image_decoding import decode_images
from keras_simclr.data.image_decoding import image_shape
from keras_simclr.data.image_files import find_images
from keras_simclr.data.resizing import standardize_image_size
from keras_simclr.embedding_writers import embedding_writer
from keras_simclr.evaluation.features import extract_features
from keras_simclr.export.export_encoder import KERAS_FILE
from keras_simclr.export.export_encoder import load_encoder
from keras_simclr.export.export_encoder import load_export_metadata

# A pretraining run's folder: its exported encoder, else its last checkpoint.
RUN_ENCODER_FOLDER = "encoder"
RUN_CHECKPOINT = "checkpoint.keras"

INPUT_PIPELINES = ("auto", "tf", "numpy")


class Embeddings(NamedTuple):
    """What `embed` produced: one row per image, in listing order.

    Attributes:
        features: float32 `(N, D)` when `embed` kept them in memory
            (`output=None`), else `None` (they are in `output`).
        relative_paths: each image's path relative to the folder,
            `/`-separated.
        labels: int32 `(N,)` class indices for a `ROOT/<class>/<file>`
            folder, else `None`.
        class_names: the class names in label order, or `None`.
        output: the file written, or `None`.
        feature_dim: D.
    """

    features: np.ndarray
    relative_paths: list
    labels: np.ndarray
    class_names: list
    output: str
    feature_dim: int

    @property
    def num_rows(self):
        """N, the number of images embedded."""
        return len(self.relative_paths)


def _fixed_input_size(model):
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if len(shape) != 4 or None in shape[1:3]:
        return None
    return int(shape[1]), int(shape[2])


def _load_keras_file(path):
    import keras_simclr.models  # registers every class a keras-simclr file holds

    model = keras.saving.load_model(path, compile=False)
    return keras_simclr.models.resolve_encoder(model, caller="embed")


def load_embedding_encoder(encoder):
    """`(encoder keras.Model, its input size (H, W) or None)` from any source `embed` takes.

    Args:
        encoder: a `keras.Model` (an encoder, or a model with an `.encoder`
            such as `ContrastiveModel`); a folder written by
            `keras_simclr.export.export_encoder`; a pretraining run's
            `--output_dir` (its `encoder/` export, else its
            `checkpoint.keras`); or a `.keras` file (a run's checkpoint,
            whose encoder is taken, or an encoder).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: a folder that holds no export, run or checkpoint; an
            object that is not a Keras model.

    Example:

    ```python
    encoder, image_size = load_embedding_encoder("runs/c10")
    ```
    """
    if not isinstance(encoder, (str, os.PathLike)):
        import keras_simclr.models

        model = keras_simclr.models.resolve_encoder(encoder, caller="embed")
        return model, _fixed_input_size(model)
    path = os.fspath(encoder)
    if not os.path.exists(path):
        raise FileNotFoundError(
            "No encoder there: expected an exported encoder folder, a pretraining run's "
            f"folder or a .keras checkpoint. Received: encoder={path!r}"
        )
    if os.path.isfile(path):
        model = _load_keras_file(path)
        return model, _fixed_input_size(model)
    if os.path.exists(os.path.join(path, KERAS_FILE)):
        size = load_export_metadata(path).get("image_size")
        model = load_encoder(path, format="keras")
        return model, tuple(size) if size else _fixed_input_size(model)
    if os.path.exists(os.path.join(path, RUN_ENCODER_FOLDER, KERAS_FILE)):
        return load_embedding_encoder(os.path.join(path, RUN_ENCODER_FOLDER))
    if os.path.exists(os.path.join(path, RUN_CHECKPOINT)):
        return load_embedding_encoder(os.path.join(path, RUN_CHECKPOINT))
    raise ValueError(
        f"The folder {path!r} holds no encoder: neither an export ({KERAS_FILE}, "
        f"written by export_encoder) nor a pretraining run ({RUN_ENCODER_FOLDER}/ or "
        f"{RUN_CHECKPOINT}). Received: encoder={path!r}"
    )


def _resolve_pipeline(input_pipeline):
    if input_pipeline not in INPUT_PIPELINES:
        raise ValueError(
            f"input_pipeline must be one of {', '.join(INPUT_PIPELINES)}. "
            f"Received: input_pipeline={input_pipeline!r}"
        )
    if input_pipeline != "auto":
        return input_pipeline
    if keras.backend.backend() != "tensorflow":
        return "numpy"  # as pretraining reads a folder on JAX: Pillow, no TensorFlow
    return "tf"


def _tf_batches(paths, orientations, image_size, batch_size):
    """uint8 batches from the training input pipeline's `tf.data` decoder, not cached."""
    from keras_simclr.data.tf_image_dataset import TFImageDataset

    labels = np.zeros((len(paths),), np.int32)  # rows are matched to paths by order
    dataset = TFImageDataset.from_files(paths, labels, [], image_size, orientations)
    for images, _ in dataset.evaluation_batches(batch_size, cache=False).as_numpy_iterator():
        yield images


def _numpy_batches(paths, image_size, batch_size, num_threads):
    """uint8 batches decoded with Pillow; the next batch decodes while this one is encoded."""
    starts = range(0, len(paths), batch_size)

    def decode(start):
        return decode_images(paths[start : start + batch_size], image_size, num_threads)

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(decode, starts[0])
        for position in range(len(starts)):
            images = pending.result()
            if position + 1 < len(starts):
                pending = pool.submit(decode, starts[position + 1])
            yield images


def _checked_files(files, skip_bad_images, num_threads):
    """`(files, orientations)`: the files that can be decoded and their EXIF orientations.

    Raises `BadImagesError` naming the others, or leaves them out with one
    `BadImagesWarning` when `skip_bad_images`.
    """
    bad, orientations = inspect_images(files.paths, num_threads=num_threads)
    orientations = np.asarray(orientations, np.int32)
    if not bad:
        return files, orientations
    if not skip_bad_images or len(bad) == len(files.paths):
        raise BadImagesError(bad, len(files.paths), files.root)
    warn_bad_images(bad, len(files.paths), files.root)
    bad_paths = {path for path, _ in bad}
    keep = np.array([path not in bad_paths for path in files.paths])
    files = files._replace(
        paths=[p for p, k in zip(files.paths, keep, strict=True) if k],
        relative_paths=[p for p, k in zip(files.relative_paths, keep, strict=True) if k],
        labels=None if files.labels is None else files.labels[keep],
    )
    return files, orientations[keep]


def embed(
    encoder,
    image_folder,
    output=None,
    batch_size=256,
    image_size=None,
    skip_bad_images=False,
    input_pipeline="auto",
    num_threads=None,
    verbose=1,
):
    """Embeds every image of a folder with an encoder: one row per image.

    The images are those `keras_simclr.data.find_images(image_folder)`
    lists: every image file at any depth, sorted by relative path; a folder
    laid out as `ROOT/<class>/<file>` also gives each image its class. They
    are checked first (a file that cannot be decoded is named before any
    work), then decoded as pretraining decodes them (the `tf.data` decoder
    on the TensorFlow backend, Pillow on the others), resized only when not
    of `image_size` (bilinear, antialiased: `keras_simclr.data.resizing`),
    scaled to float32 in [0, 1] and encoded in inference mode
    (`keras_simclr.evaluation.extract_features`), `batch_size` at a time,
    each batch written before the next is decoded: memory depends on the
    batch, not on the folder.

    `output` picks the format by its extension (see
    `keras_simclr.embedding_writers`):

    - `.npy`: the float32 features `(N, D)`, and beside it
      `<name>.index.csv` with columns `path` [, `label`, `class_name`]:
      row i of one is row i of the other.
    - `.csv`: columns `path` [, `label`, `class_name`], `f0` ... `f{D-1}`.
    - `.parquet`: columns `path` [, `label`, `class_name`], `embedding`
      (a fixed-size list of D float32 per row), one row group per batch.

    Args:
        encoder: an exported encoder folder (`export_encoder`'s output); a
            pretraining run's `--output_dir` (its `encoder/`, else its
            `checkpoint.keras`); a `.keras` checkpoint of a pretraining run
            (its model's encoder is used) or of an encoder; or a
            `keras.Model` in memory (an encoder, or a model with an
            `.encoder` such as `ContrastiveModel`).
        image_folder: a folder of images, any layout.
        output: a `.npy`, `.csv` or `.parquet` path (written over; its
            folder is created); `None` keeps the features in memory.
        batch_size: images decoded and encoded at a time.
        image_size: `(H, W)` or an int; `None`: the encoder's input size
            (the first image's size if the encoder's is not fixed).
        skip_bad_images: leave out the files that cannot be decoded (one
            `BadImagesWarning` names them) instead of raising.
        input_pipeline: `"tf"` (the `tf.data` decoder), `"numpy"` (Pillow,
            no TensorFlow) or `"auto"`: tf on the TensorFlow backend,
            numpy on the others.
        num_threads: Pillow's checking and decoding threads; `None`: one
            per CPU.
        verbose: 1 shows a `keras.utils.Progbar` of the images embedded;
            0 nothing.

    Returns:
        an `Embeddings` (relative paths, labels, class names, feature
        width, the output path), holding the features when `output` is
        `None`.

    Raises:
        ValueError: an `output` of another extension (before anything is
            read); no image under `image_folder`; a bad `batch_size`,
            `image_size` or `input_pipeline`; images that cannot be decoded
            (`keras_simclr.data.BadImagesError`), unless `skip_bad_images`;
            an encoder whose output is not `(batch, D)`.
        FileNotFoundError: `image_folder` or `encoder` does not exist.

    Example:

    ```python
    result = keras_simclr.embed("runs/c10/encoder", "/photos", "embeddings.parquet")
    frame = pandas.read_parquet("embeddings.parquet")
    features = numpy.stack(frame["embedding"])  # (N, D), row i is frame["path"][i]
    ```
    """
    writer = None if output is None else embedding_writer(output)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size}")
    batch_size = int(batch_size)
    image_size = standardize_image_size(image_size)
    pipeline = _resolve_pipeline(input_pipeline)
    files = find_images(image_folder)
    model, input_size = load_embedding_encoder(encoder)
    files, orientations = _checked_files(files, skip_bad_images, num_threads)
    if image_size is None:
        image_size = input_size or image_shape(files.paths[0])
    if pipeline == "tf":
        batches = _tf_batches(files.paths, orientations, image_size, batch_size)
    else:
        batches = _numpy_batches(files.paths, image_size, batch_size, num_threads)
    if writer is not None:
        folder = os.path.dirname(os.path.abspath(writer.path))
        os.makedirs(folder, exist_ok=True)
    progress = keras.utils.Progbar(files.num_images, unit_name="image") if verbose else None
    kept, start, feature_dim = [], 0, None
    try:
        for images in batches:
            features = extract_features(model, images, batch_size=len(images))
            stop = start + len(images)
            if feature_dim is None:
                feature_dim = features.shape[1]
                if writer is not None:
                    writer.open(files.num_images, feature_dim, files.class_names)
            if writer is None:
                kept.append(features)
            else:
                labels = None if files.labels is None else files.labels[start:stop]
                writer.write(files.relative_paths[start:stop], features, labels)
            start = stop
            if progress is not None:
                progress.update(start)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return Embeddings(
        features=np.concatenate(kept) if writer is None else None,
        relative_paths=list(files.relative_paths),
        labels=files.labels,
        class_names=files.class_names,
        output=None if writer is None else writer.path,
        feature_dim=int(feature_dim),
    )
