"""`keras-simclr pretrain`'s flags, their checks, and the recipe they choose."""

import os

from absl import flags

from keras_simclr import recipes
from keras_simclr.cli.data_sources import has_split_layout
from keras_simclr.cli.errors import PretrainError
from keras_simclr.cli.flag_config import FlagDefiner

INPUT_PIPELINES = ("auto", "tf", "numpy")

# Flags passed to `keras_simclr.recipes.build` under their own names.
RECIPE_FLAGS = (
    "width_multiplier",
    "temperature",
    "augmentation",
    "learning_rate",
    "learning_rate_scaling",
    "optimizer",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "projection_dim",
    "head_layers",
    "queue_size",
    "shuffle_bn_splits",
    "steps_per_execution",
    "seed",
    "batch_size",
    "epochs",
    "moco_momentum",
    "micro_batch_size",
    "memory_size",
    "memory_momentum",
)


def define_flags(flag_values=flags.FLAGS):
    """Defines `keras-simclr pretrain`'s flags in `flag_values` (absl's global ones by default)."""
    define = FlagDefiner(flag_values)
    define.enum(
        "method",
        "simclr",
        list(recipes.METHODS),
        "simclr (v1), simclr_v2 (3-layer head) or moco_v2 (momentum encoder + queue); "
        "sets the defaults of the head, augmentation, temperature and optimizer.",
    )
    define.string("dataset", None, "tfds dataset name, e.g. cifar10, stl10, imagenet2012.")
    define.string("tfds_data_dir", None, "tfds data_dir (where `tfds.load` looks for data).")
    define.string(
        "image_folder",
        None,
        "Folder of images. ROOT/<train_split>/<class>/*.jpg: pretrain on the train split, "
        "kNN-evaluate on the eval split. Any other folder (flat or nested; .jpg .jpeg .png "
        ".bmp .gif .webp at any depth, EXIF orientation applied): pretrain on every image, "
        "unlabelled; kNN only with --eval_folder.",
    )
    define.string(
        "eval_folder",
        None,
        "Labelled folder for the kNN evaluation, ROOT/{<train_split>,<eval_split>}/<class>/*: "
        "its train split is the memory bank, its eval split the queries (e.g. to evaluate "
        "pretraining on an unlabelled --image_folder).",
    )
    define.enum(
        "input_pipeline",
        "auto",
        list(INPUT_PIPELINES),
        "tf: tf.data (decode, cache, shuffle, batch); numpy: --image_folder decoded once "
        "with Pillow into a uint8 array in host memory and fed as uint8 batches, without "
        "TensorFlow; auto: numpy on the JAX backend for --image_folder, else tf. "
        "tfds datasets (--dataset) always use tf.",
    )
    define.string(
        "train_split",
        "train",
        "Split to pretrain on (and the kNN memory bank); of --eval_folder: the memory bank.",
    )
    define.string("eval_split", "test", "Split whose images are the kNN queries.")
    define.integer("train_examples", None, "Use only the first N training examples (quick runs).")
    define.string(
        "model",
        "resnet18_cifar",
        "Encoder: resnet18_cifar, resnet50, resnet50_2x, ...; keras_hub:<preset> (a keras-hub "
        "image backbone: a preset such as resnet_50_imagenet or a kaggle:// / hf:// handle, "
        "downloaded on first use, or a local preset directory written by "
        "backbone.save_to_preset(dir), which works offline; pip install keras-simclr[hub]); "
        "keras_applications:<Name> (e.g. ResNet50, MobileNetV3Small; random weights). "
        "Backbones take no --width_multiplier.",
    )
    define.float(
        "width_multiplier",
        None,
        "Override the encoder's width multiplier (e.g. 0.25 for quick runs).",
    )
    define.integer("image_size", None, "Image side; default: the data's own size.")
    define.enum(
        "augmentation",
        "auto",
        list(recipes.AUGMENTATIONS),
        "Augmentation preset; auto: moco_v2 for --method moco_v2, else cifar for "
        "images up to 64 px and imagenet above.",
    )
    define.integer("batch_size", 256, "Global batch size.")
    define.integer("epochs", 100, "Training epochs.")
    define.float(
        "learning_rate",
        None,
        "Base learning rate, scaled by --learning_rate_scaling. Default: 0.3 (lars, sgd) "
        "with linear scaling (lr = 0.3 * batch / 256, as in SimCLR), 0.03 for moco_v2 "
        "(MoCo v2: SGD 0.03 at batch 256), 1e-3 for adamw.",
    )
    define.enum(
        "learning_rate_scaling",
        "linear",
        list(recipes.LEARNING_RATE_SCALINGS),
        "linear: base * batch / 256; sqrt: base * sqrt(batch); none: base.",
    )
    define.float(
        "temperature",
        None,
        "Loss temperature; default 0.2 for moco_v2, else (NT-Xent) "
        "0.5 for CIFAR-size images and 0.1 above.",
    )
    define.enum(
        "optimizer",
        None,
        list(recipes.OPTIMIZERS),
        "Optimizer; default sgd for moco_v2, else lars.",
    )
    define.float("momentum", 0.9, "Momentum (lars, sgd).")
    define.float("weight_decay", None, "Weight decay; default 1e-4 for moco_v2, else 1e-6.")
    define.float(
        "warmup_epochs", None, "Linear warmup epochs; default 10% of --epochs, at most 10."
    )
    define.integer("projection_dim", 128, "Projection head output width.")
    define.integer("head_layers", None, "Projection head layers; default 3 for simclr_v2, else 2.")
    define.integer(
        "queue_size", 65536, "moco_v2: negative keys in the queue (MoCo's CIFAR demo: 4096)."
    )
    define.float("moco_momentum", 0.999, "moco_v2: momentum of the key encoder's moving average.")
    define.integer(
        "shuffle_bn_splits",
        8,
        "moco_v2: BatchNorm groups the keys are shuffled into; must divide the per-replica batch.",
    )
    define.integer(
        "micro_batch_size",
        None,
        "Gradient caching: every step encodes each replica's batch in chunks of K images "
        "(moco_v2: its queries), computes the loss on the whole global batch, then recomputes "
        "each chunk with the loss's gradient: the gradients of the full --batch_size at "
        "the activation memory of K images, for about one more forward pass. Must divide "
        "the per-replica batch. BatchNorm normalizes each chunk alone (never synchronized "
        "across replicas). Default: off.",
    )
    define.integer(
        "memory_size",
        None,
        "simclr, simclr_v2: SimCLR v2's memory: a momentum copy of the encoder and head "
        "encodes every batch too, and its last M projections are extra negatives; at least "
        "2 x --batch_size. Default 0 (off): the paper's 65536 needs a long run, because the "
        "copy lags the model by about 1 / (1 - --memory_momentum) = 1000 steps (a short "
        "run's memory holds stale negatives), and it costs one more forward pass a step. "
        "moco_v2 has its own queue: --queue_size.",
    )
    define.float(
        "memory_momentum",
        None,
        "With --memory_size: momentum of the memory encoder's moving average; default 0.999.",
    )
    define.string("output_dir", None, "Where checkpoints, logs, metrics and the encoder go.")
    define.bool(
        "resume",
        True,
        "Continue the run in --output_dir if it has a checkpoint: "
        "only a larger --epochs may differ from the recorded config.json; "
        "--noresume starts over.",
    )
    define.bool(
        "deterministic",
        False,
        "Deterministic kernels, and a data order and "
        "augmentations derived from (seed, epoch, step): a run killed and resumed "
        "ends with the weights of an uninterrupted one. Holds the training split "
        "in memory; slower (TensorFlow turns XLA off).",
    )
    define.bool(
        "skip_bad_images",
        False,
        "Drop unreadable or truncated images of "
        "--image_folder (listed in a warning) instead of stopping with an error "
        "that names them.",
    )
    define.integer("seed", 0, "Random seed.")
    define.bool("mixed_precision", False, "Train with the mixed_bfloat16 policy.")
    define.integer("knn_every", 1, "Evaluate kNN every N epochs (0: only at the end).")
    define.integer("knn_k", 200, "kNN neighbours.")
    define.float("knn_temperature", 0.1, "kNN weighting temperature.")
    define.integer("steps_per_execution", 1, "Steps per compiled execution (TPUs: e.g. 100).")
    define.string(
        "tpu", None, "TPU to train on: a name or address, 'local' on a Cloud TPU VM, '' on Colab."
    )
    define.float(
        "collective_timeout",
        600.0,
        "Several workers (TF_CONFIG): seconds a "
        "collective (gradient all-reduce, variable broadcast) waits for the other "
        "workers before the run stops with an error (a worker that hangs); a worker "
        "that dies is noticed within seconds regardless. 0: wait forever.",
    )
    define.integer(
        "verbose",
        1,
        "Keras progress: 0 silent, 1 progress bar, 2 one line per "
        "epoch; 2 also prints the traceback of an error.",
    )


def recipe_arguments(config):
    """`keras_simclr.recipes.build`'s keyword arguments for these flags."""
    return {"encoder": config["model"], **{name: config[name] for name in RECIPE_FLAGS}}


def validate_flags(config):
    """Raises `PretrainError` for flags that cannot run, before any work."""
    if bool(config["dataset"]) == bool(config["image_folder"]):
        raise PretrainError(
            "Give exactly one of --dataset and --image_folder. Received: "
            f"dataset={config['dataset']!r}, image_folder={config['image_folder']!r}"
        )
    if not config["output_dir"]:
        raise PretrainError("--output_dir is required. Received: output_dir=None")
    if config.get("eval_folder"):
        _check_eval_folder(config)
    if config["train_examples"] is not None and config["train_examples"] < 1:
        raise PretrainError(
            "--train_examples must be at least 1 (leave it unset for all). "
            f"Received: train_examples={config['train_examples']}"
        )
    try:
        recipes.validate(config["method"], **recipe_arguments(config))
    except ValueError as error:
        message = str(error)
        if message.split(" ", 1)[0] in config:  # "learning_rate must be ..." names a flag
            message = "--" + message
        raise PretrainError(message) from None


def _check_eval_folder(config):
    """Raises `PretrainError` unless `--eval_folder` has the labelled split layout."""
    folder = config["eval_folder"]
    if not os.path.isdir(folder):
        raise PretrainError(
            "--eval_folder does not exist or is not a folder; it must hold "
            f"ROOT/{{{config['train_split']},{config['eval_split']}}}/<class>/ images. "
            f"Received: eval_folder={folder!r}"
        )
    for flag in ("train_split", "eval_split"):
        if not has_split_layout(folder, config[flag]):
            raise PretrainError(
                f"--eval_folder has no {config[flag]}/<class>/ folders (--{flag}); it must hold "
                f"ROOT/{{{config['train_split']},{config['eval_split']}}}/<class>/ images. "
                f"Received: eval_folder={folder!r}"
            )


def resolve_input_pipeline(config):
    """`"tf"` or `"numpy"` for the config's `--input_pipeline` (`auto` resolved).

    auto: numpy on the JAX backend for --image_folder, tf otherwise; tfds
    datasets need tf.
    """
    import keras

    choice = config.get("input_pipeline") or "auto"
    if choice not in INPUT_PIPELINES:
        raise PretrainError(
            f"Unknown --input_pipeline; known: {', '.join(INPUT_PIPELINES)}. "
            f"Received: input_pipeline={choice!r}"
        )
    if choice == "auto":
        return "numpy" if config["image_folder"] and keras.backend.backend() == "jax" else "tf"
    if choice == "numpy" and not config["image_folder"]:
        raise PretrainError(
            "--input_pipeline numpy reads only --image_folder; tfds datasets need "
            "--input_pipeline tf (or auto). Received: input_pipeline='numpy', "
            f"dataset={config['dataset']!r}"
        )
    return choice
