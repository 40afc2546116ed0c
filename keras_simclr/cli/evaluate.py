"""`keras-simclr linear_eval` and `keras-simclr finetune`: judge an exported encoder.

    keras-simclr linear_eval --encoder runs/c10/encoder --image_folder /data/cifar10
    keras-simclr finetune --encoder runs/c10/encoder --image_folder /data/cifar10 \
        --label_fraction 0.1

`--encoder` is a directory written by `export_encoder` (the `pretrain`
command's `OUTPUT_DIR/encoder`); without it, `--model` gives a randomly
initialized encoder, the baseline a pretrained one must beat. Both print
top-1/top-5 test accuracy and write them as JSON to `--output` if given.
"""

import json
import math
import os

from absl import flags

from keras_simclr.cli.data_sources import load_split
from keras_simclr.cli.errors import run_subcommand
from keras_simclr.cli.flag_config import FlagDefiner
from keras_simclr.cli.flag_config import config_from_flags


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags of `linear_eval` and `finetune` in `flag_values`."""
    define = FlagDefiner(flag_values)
    define.string("encoder", None, "Exported encoder directory (OUTPUT_DIR/encoder of pretrain).")
    define.string(
        "model", "resnet18_cifar", "Without --encoder: a random-init encoder of this kind."
    )
    define.string("dataset", None, "tfds dataset name.")
    define.string("tfds_data_dir", None, "tfds data_dir.")
    define.string("image_folder", None, "Image folder root: ROOT/<split>/<class>/*.jpg.")
    define.string("train_split", "train", "Labelled training split.")
    define.string("eval_split", "test", "Test split.")
    define.float(
        "label_fraction", 1.0, "Per-class balanced fraction of the training labels (0.01, 0.1, 1)."
    )
    define.integer("epochs", 30, "Classifier (or fine-tuning) epochs.")
    define.integer("batch_size", 256, "Batch size.")
    define.float(
        "learning_rate",
        None,
        "Peak learning rate (cosine decay). Default 0.1 linear, 0.01 finetune.",
    )
    define.enum("optimizer", "sgd", ["sgd", "lars"], "Optimizer.")
    define.bool(
        "augment", True, "linear_eval: augment every step (crop + flip); off: precomputed features."
    )
    define.integer("seed", 0, "Seed of the label subset and augmentation.")
    define.string("output", None, "Write the result as JSON here.")
    define.integer("verbose", 1, "2: print the traceback of an error.")


def _encoder(config, image_size):
    import keras

    from keras_simclr.export.export_encoder import KERAS_FILE
    from keras_simclr.models import create_encoder

    if config["encoder"]:
        path = os.path.join(config["encoder"], KERAS_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No exported encoder in {config['encoder']!r} (expected {KERAS_FILE} "
                f"written by export_encoder). Received: encoder={config['encoder']!r}"
            )
        return keras.saving.load_model(path)
    keras.utils.set_random_seed(config["seed"])
    return create_encoder(config["model"], image_size)


def run_evaluation(config, mode):
    """Runs linear evaluation (`mode="linear_eval"`) or fine-tuning (`"finetune"`)."""
    from keras_simclr.evaluation import fine_tune
    from keras_simclr.evaluation import linear_evaluation

    if bool(config["dataset"]) == bool(config["image_folder"]):
        raise ValueError(
            "Give exactly one of --dataset and --image_folder. Received: "
            f"dataset={config['dataset']!r}, image_folder={config['image_folder']!r}"
        )
    if not 0 < config["label_fraction"] <= 1:
        raise ValueError(
            "--label_fraction must be in (0, 1]. Received: "
            f"label_fraction={config['label_fraction']}"
        )
    rate = config["learning_rate"]
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ValueError(
            f"--learning_rate must be a finite number > 0. Received: learning_rate={rate}"
        )
    for name in ("epochs", "batch_size"):
        if config[name] < 1:
            raise ValueError(f"--{name} must be positive. Received: {name}={config[name]}")
    train = load_split(config, config["train_split"], None)
    image_size = train.image_size[0]
    test = load_split(config, config["eval_split"], image_size)
    encoder = _encoder(config, image_size)
    if config["label_fraction"] < 1.0:
        train = train.subset(config["label_fraction"], seed=config["seed"])
    train_arrays = train.arrays()
    test_arrays = test.arrays()
    common = dict(
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        optimizer=config["optimizer"],
        seed=config["seed"],
    )
    if mode == "linear_eval":
        result = linear_evaluation(
            encoder,
            train_arrays,
            test_arrays,
            train.num_classes,
            learning_rate=config["learning_rate"] or 0.1,
            augment=config["augment"],
            **common,
        )
    else:
        result = fine_tune(
            encoder,
            train_arrays,
            test_arrays,
            train.num_classes,
            learning_rate=config["learning_rate"] or 0.01,
            **common,
        )
    summary = {
        "mode": mode,
        "encoder": config["encoder"] or f"random-init {config['model']}",
        "top1": float(result["top1"]),
        "top5": float(result["top5"]),
        "train_examples": int(len(train_arrays[1])),
        "label_fraction": config["label_fraction"],
        "epochs": config["epochs"],
    }
    print(json.dumps(summary))
    if config["output"]:
        with open(config["output"], "w") as f:
            json.dump(summary, f, indent=2)
    return summary


def _main(mode):
    config = config_from_flags(define_flags, flags.FLAGS)
    run_subcommand(
        lambda config: run_evaluation(config, mode),
        config,
        config["verbose"],
        prog=f"keras-simclr {mode}",
    )


def main_linear_eval(argv):
    del argv
    _main("linear_eval")


def main_finetune(argv):
    del argv
    _main("finetune")
