"""`keras-simclr embed`: an encoder's features of every image of a folder, to a file.

    keras-simclr embed --encoder runs/c10/encoder --image_folder /photos \
        --output embeddings.parquet

`--encoder` is an exported encoder folder (`pretrain`'s `OUTPUT_DIR/encoder`),
a pretraining run's `OUTPUT_DIR` or a `checkpoint.keras`. `--image_folder`
is any folder of images (flat, nested, or one sub-folder per class, which
adds `label` and `class_name` columns). `--output` ends in `.npy` (features;
the paths go to `NAME.index.csv` beside it), `.csv` or `.parquet`. The images
are decoded, resized and scaled as pretraining reads them, and encoded and
written batch by batch (`keras_simclr.embed`). Prints one line at the end:
rows, feature width and the file written.
"""

from absl import flags

from keras_simclr.cli.errors import CLIError
from keras_simclr.cli.errors import run_subcommand
from keras_simclr.cli.flag_config import FlagDefiner
from keras_simclr.cli.flag_config import config_from_flags


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags of `embed` in `flag_values`."""
    define = FlagDefiner(flag_values)
    define.string(
        "encoder",
        None,
        "Exported encoder folder (OUTPUT_DIR/encoder of pretrain), a pretrain OUTPUT_DIR, "
        "or a checkpoint.keras.",
    )
    define.string("image_folder", None, "Folder of images, any layout (flat, nested, by class).")
    define.string(
        "output",
        None,
        "Output file: .npy (features; paths in NAME.index.csv beside it), .csv or .parquet.",
    )
    define.integer("batch_size", 256, "Images decoded and encoded at a time.")
    define.integer("image_size", None, "Side to resize to (default: the encoder's input size).")
    define.bool(
        "skip_bad_images", False, "Leave out files that cannot be decoded (with a warning)."
    )
    define.enum(
        "input_pipeline",
        "auto",
        ["auto", "tf", "numpy"],
        "tf: tf.data decoding; numpy: Pillow, without TensorFlow; auto: numpy on JAX, else tf.",
    )
    define.integer("verbose", 1, "0: no progress bar; 2: print the traceback of an error.")


def run_embedding(config):
    """Embeds `--image_folder` with `--encoder` into `--output`; returns the `Embeddings`."""
    from keras_simclr.embedding import embed
    from keras_simclr.embedding_writers import embedding_writer

    for name in ("encoder", "image_folder", "output"):
        if not config[name]:
            raise CLIError(f"--{name} is required. Received: {name}={config[name]!r}")
    embedding_writer(config["output"])  # an unknown extension fails before anything loads
    result = embed(
        config["encoder"],
        config["image_folder"],
        config["output"],
        batch_size=config["batch_size"],
        image_size=config["image_size"],
        skip_bad_images=config["skip_bad_images"],
        input_pipeline=config["input_pipeline"],
        verbose=1 if config["verbose"] >= 1 else 0,
    )
    written = " and ".join(embedding_writer(result.output).files())
    print(f"Wrote {result.num_rows} embeddings of dimension {result.feature_dim} to {written}")
    return result


def main(argv):
    del argv
    config = config_from_flags(define_flags, flags.FLAGS)
    run_subcommand(run_embedding, config, config["verbose"], prog="keras-simclr embed")
