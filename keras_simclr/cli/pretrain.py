"""`keras-simclr pretrain`: contrastive pretraining on real data, end to end.

Reads a tfds dataset (`--dataset cifar10`) or an image folder
(`--image_folder ROOT` holding `ROOT/<split>/<class>/*.jpg`), trains a
`ContrastiveModel` (`--method simclr`, `simclr_v2`) or a `MoCoModel`
(`--method moco_v2`), evaluates weighted kNN (k=200, T=0.1, train split as the
memory bank, eval split as queries) every `--knn_every` epochs and at the end,
and writes to `--output_dir`:

    checkpoint.keras, checkpoint.json   the last completed epoch (resume)
    log.csv, tensorboard/               per-epoch metrics
    metrics.json                        final kNN accuracy, epochs, images/s
    encoder/                            the exported encoder (SavedModel + .keras)

Started again with the same `--output_dir` it resumes from the last completed
epoch with the same optimizer state and schedule position (`--noresume`
starts over).
"""

import contextlib
import json
import math
import os

from absl import flags
from absl import logging

FLAGS = flags.FLAGS

def define_flags():
    """Defines this subcommand's flags (called once, by `keras-simclr`)."""
    flags.DEFINE_enum("method", "simclr", list(METHODS),
                      "simclr (v1), simclr_v2 (3-layer head) or moco_v2 (momentum encoder + queue); "
                      "sets the defaults of the head, augmentation, temperature and optimizer.")
    flags.DEFINE_string("dataset", None, "tfds dataset name, e.g. cifar10, stl10, imagenet2012.")
    flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir (where `tfds.load` looks for data).")
    flags.DEFINE_string("image_folder", None, "Image folder root: ROOT/<split>/<class>/*.jpg.")
    flags.DEFINE_enum("input_pipeline", "auto", list(INPUT_PIPELINES),
                      "tf: tf.data (decode, cache, shuffle, batch); numpy: --image_folder decoded once "
                      "with Pillow into a uint8 array in host memory and fed as uint8 batches, without "
                      "TensorFlow; auto: numpy on the JAX backend for --image_folder, else tf. "
                      "tfds datasets (--dataset) always use tf.")
    flags.DEFINE_string("train_split", "train", "Split to pretrain on (and the kNN memory bank).")
    flags.DEFINE_string("eval_split", "test", "Split whose images are the kNN queries.")
    flags.DEFINE_integer("train_examples", None, "Use only the first N training examples (quick runs).")
    flags.DEFINE_string("model", "resnet18_cifar", "Encoder: resnet18_cifar, resnet50, resnet50_2x, ...")
    flags.DEFINE_float("width_multiplier", None, "Override the encoder's width multiplier (e.g. 0.25 for quick runs).")
    flags.DEFINE_integer("image_size", None, "Image side; default: the data's own size.")
    flags.DEFINE_enum("augmentation", "auto", ["auto", "cifar", "imagenet", "moco_v2"],
                      "Augmentation preset; auto: moco_v2 for --method moco_v2, else cifar for "
                      "images up to 64 px and imagenet above.")
    flags.DEFINE_integer("batch_size", 256, "Global batch size.")
    flags.DEFINE_integer("epochs", 100, "Training epochs.")
    flags.DEFINE_float("learning_rate", None,
                       "Base learning rate, scaled by --learning_rate_scaling. Default: 0.3 (lars, sgd) "
                       "with linear scaling (lr = 0.3 * batch / 256, as in SimCLR), 0.03 for moco_v2 "
                       "(MoCo v2: SGD 0.03 at batch 256), 1e-3 for adamw.")
    flags.DEFINE_enum("learning_rate_scaling", "linear", ["linear", "sqrt", "none"],
                      "linear: base * batch / 256; sqrt: base * sqrt(batch); none: base.")
    flags.DEFINE_float("temperature", None, "Loss temperature; default 0.2 for moco_v2, else (NT-Xent) "
                       "0.5 for CIFAR-size images and 0.1 above.")
    flags.DEFINE_enum("optimizer", None, ["lars", "sgd", "adamw"], "Optimizer; default sgd for moco_v2, "
                      "else lars.")
    flags.DEFINE_float("momentum", 0.9, "Momentum (lars, sgd).")
    flags.DEFINE_float("weight_decay", None, "Weight decay; default 1e-4 for moco_v2, else 1e-6.")
    flags.DEFINE_float("warmup_epochs", None, "Linear warmup epochs; default 10% of --epochs, at most 10.")
    flags.DEFINE_integer("projection_dim", 128, "Projection head output width.")
    flags.DEFINE_integer("head_layers", None, "Projection head layers; default 3 for simclr_v2, else 2.")
    flags.DEFINE_integer("queue_size", 65536, "moco_v2: negative keys in the queue (MoCo's CIFAR demo: 4096).")
    flags.DEFINE_float("moco_momentum", 0.999, "moco_v2: momentum of the key encoder's moving average.")
    flags.DEFINE_integer("shuffle_bn_splits", 8, "moco_v2: BatchNorm groups the keys are shuffled into; "
                         "must divide the per-replica batch.")
    flags.DEFINE_string("output_dir", None, "Where checkpoints, logs, metrics and the encoder go.")
    flags.DEFINE_bool("resume", True, "Continue from the checkpoint in --output_dir if there is one.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_bool("mixed_precision", False, "Train with the mixed_bfloat16 policy.")
    flags.DEFINE_integer("knn_every", 1, "Evaluate kNN every N epochs (0: only at the end).")
    flags.DEFINE_integer("knn_k", 200, "kNN neighbours.")
    flags.DEFINE_float("knn_temperature", 0.1, "kNN weighting temperature.")
    flags.DEFINE_integer("steps_per_execution", 1, "Steps per compiled execution (TPUs: e.g. 100).")
    flags.DEFINE_string("tpu", None, "TPU to train on: a name or address, 'local' on a Cloud TPU VM, '' on Colab.")
    flags.DEFINE_integer("verbose", 1, "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch.")


METHODS = ("simclr", "simclr_v2", "moco_v2")
INPUT_PIPELINES = ("auto", "tf", "numpy")


def method_defaults(config):
    """The config with every `None` default filled in for its `--method`."""
    config = dict(config)
    moco = config["method"] == "moco_v2"
    defaults = {
        "optimizer": "sgd" if moco else "lars",
        "weight_decay": 1e-4 if moco else 1e-6,
        "head_layers": 3 if config["method"] == "simclr_v2" else 2,
    }
    for name, value in defaults.items():
        if config[name] is None:
            config[name] = value
    return config


class PretrainError(ValueError):
    """Bad flags or data, found before any training."""


def learning_rate_for(base, batch_size, scaling):
    """SimCLR's learning-rate scaling with the batch size."""
    if scaling == "linear":
        return base * batch_size / 256.0
    if scaling == "sqrt":
        return base * math.sqrt(batch_size)
    return base


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


def load_split(config, split, image_size):
    """One split from --image_folder or --dataset, at `image_size` (None: native)."""
    from keras_simclr import data

    if config.get("input_pipeline") == "numpy":
        from keras_simclr.data import numpy_images

        return numpy_images.load_numpy_image_folder(
            config["image_folder"], split, image_size=image_size
        )
    if config["image_folder"]:
        return data.load_image_folder(config["image_folder"], split, image_size=image_size)
    return data.load_tfds(
        config["dataset"], split, data_dir=config["tfds_data_dir"], image_size=image_size
    )


def _validate(config):
    from keras_simclr.models import ENCODERS

    if bool(config["dataset"]) == bool(config["image_folder"]):
        raise PretrainError(
            "Give exactly one of --dataset and --image_folder. Received: "
            f"dataset={config['dataset']!r}, image_folder={config['image_folder']!r}"
        )
    if not config["output_dir"]:
        raise PretrainError("--output_dir is required. Received: output_dir=None")
    if config["method"] not in METHODS:
        raise PretrainError(
            f"Unknown --method; known methods: {', '.join(METHODS)}. "
            f"Received: method={config['method']!r}"
        )
    if config["model"] not in ENCODERS:
        raise PretrainError(
            f"Unknown --model; known models: {', '.join(sorted(ENCODERS))}. "
            f"Received: model={config['model']!r}"
        )
    for name in ("batch_size", "epochs"):
        if config[name] < 1:
            raise PretrainError(f"--{name} must be positive. Received: {name}={config[name]}")
    if config["method"] == "moco_v2" and config["queue_size"] < config["batch_size"]:
        raise PretrainError(
            "--queue_size must hold at least one global batch of keys. Received: "
            f"queue_size={config['queue_size']}, batch_size={config['batch_size']}"
        )
    if config["temperature"] is not None and not config["temperature"] > 0:
        raise PretrainError(
            f"--temperature must be > 0. Received: temperature={config['temperature']}"
        )


def _build_model(config, image_size, num_classes, steps_per_epoch, sync_batchnorm=False):
    import keras

    import keras_simclr as ks

    moco = config["method"] == "moco_v2"
    # MoCo keeps BatchNorm per replica and shuffles the keys into groups
    # instead: synchronized statistics would leak across the groups.
    sync_batchnorm = sync_batchnorm and not moco
    preset = config["augmentation"]
    if preset == "auto":
        preset = "moco_v2" if moco else "cifar" if image_size <= 64 else "imagenet"
    temperature = config["temperature"] or (
        0.2 if moco else 0.5 if preset == "cifar" else 0.1
    )
    parts = dict(
        encoder=ks.models.create_encoder(
            config["model"],
            image_size,
            width_multiplier=config["width_multiplier"],
            sync_batchnorm=sync_batchnorm,
        ),
        projection_head=ks.models.ProjectionHead(
            num_layers=config["head_layers"],
            output_dim=config["projection_dim"],
            sync_batchnorm=sync_batchnorm,
        ),
        augmenter=ks.augment.SimCLRAugmentation(
            image_size, preset=preset, seed=config["seed"]
        ),
        temperature=temperature,
        num_classes=num_classes,
        name=config["method"],
    )
    if moco:
        model = ks.models.MoCoModel(
            **parts,
            queue_size=config["queue_size"],
            momentum=config["moco_momentum"],
            shuffle_bn_splits=config["shuffle_bn_splits"],
            seed=config["seed"],
        )
    else:
        model = ks.models.ContrastiveModel(**parts)
    base = config["learning_rate"]
    if base is None:
        base = 1e-3 if config["optimizer"] == "adamw" else 0.03 if moco else 0.3
    peak = learning_rate_for(base, config["batch_size"], config["learning_rate_scaling"])
    total_steps = config["epochs"] * steps_per_epoch
    warmup_epochs = config["warmup_epochs"]
    if warmup_epochs is None:
        warmup_epochs = min(10.0, 0.1 * config["epochs"])
    warmup_steps = min(int(round(warmup_epochs * steps_per_epoch)), total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    if config["optimizer"] == "lars":
        optimizer = ks.optimizers.LARS(
            schedule, momentum=config["momentum"], weight_decay=config["weight_decay"]
        )
    elif config["optimizer"] == "sgd":
        # Plain SGD with L2 weight decay in the loss-free, decoupled Keras form.
        optimizer = keras.optimizers.SGD(
            schedule, momentum=config["momentum"], weight_decay=config["weight_decay"] or None
        )
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config["weight_decay"])
    model.compile(optimizer=optimizer, steps_per_execution=config["steps_per_execution"])
    return model, {"preset": preset, "temperature": temperature, "peak_learning_rate": peak,
                   "warmup_steps": warmup_steps, "total_steps": total_steps}


def run_pretraining(config):
    """Runs pretraining from a config dict (the flags, by name). Returns metrics."""
    import keras

    from keras_simclr import data
    from keras_simclr.cli.checkpointing import EpochCheckpoint
    from keras_simclr.cli.checkpointing import load_checkpoint
    from keras_simclr.cli.checkpointing import Throughput
    from keras_simclr.evaluation import KNNMonitor
    from keras_simclr.evaluation import NonFiniteLossGuard

    config = method_defaults(config)
    _validate(config)
    config["input_pipeline"] = resolve_input_pipeline(config)
    numpy_pipeline = config["input_pipeline"] == "numpy"
    # Data first: every data error surfaces before a model is built.
    if numpy_pipeline:
        from keras_simclr.data import numpy_images

        # Decode once, at the final (square) size: the first image sets the
        # height unless --image_size is given.
        image_size = config["image_size"] or numpy_images.image_folder_size(
            config["image_folder"], config["train_split"]
        )[0]
        train = load_split(config, config["train_split"], image_size)
        if config["train_examples"]:
            train = train.take(config["train_examples"])
        evaluation = load_split(config, config["eval_split"], image_size)
        # Raises for a batch larger than the data set, before a model is built.
        train_ds = numpy_images.ShuffledBatches(
            train.images, train.labels, config["batch_size"], seed=config["seed"]
        )
    else:
        train = load_split(config, config["train_split"], config["image_size"])
        image_size = train.image_size[0]
        if tuple(train.image_size) != (image_size, image_size):
            # Square images for the model; the first image set the height.
            train = load_split(config, config["train_split"], image_size)
        if config["train_examples"]:
            train = data.take_examples(train, config["train_examples"])
        train = train.cache()
        evaluation = load_split(config, config["eval_split"], image_size).cache()
        # Raises for a batch larger than the data set, before a model is built.
        train_ds = data.pretraining_dataset(train, config["batch_size"], seed=config["seed"])
    steps_per_epoch = train.num_examples // config["batch_size"]

    from keras_simclr import distribute

    strategy = distribute.resolve_strategy(tpu=config["tpu"])
    replicas = distribute.replicas_of(strategy)
    distribute.check_global_batch(config["batch_size"], replicas)
    per_replica = config["batch_size"] // replicas
    if config["method"] == "moco_v2" and per_replica % config["shuffle_bn_splits"]:
        raise PretrainError(
            "--shuffle_bn_splits must divide the per-replica batch. Received: "
            f"shuffle_bn_splits={config['shuffle_bn_splits']}, batch_size={config['batch_size']} "
            f"over {replicas} replica(s)"
        )

    keras.utils.set_random_seed(config["seed"])
    if config["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    output_dir = config["output_dir"]
    os.makedirs(output_dir, exist_ok=True)
    initial_epoch = 0
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        # Global BatchNorm whenever the batch is split over devices.
        model, settings = _build_model(
            config, image_size, train.num_classes, steps_per_epoch,
            sync_batchnorm=replicas > 1,
        )
        if config["resume"]:
            restored = load_checkpoint(output_dir)
            if restored is not None:
                model, initial_epoch = restored
                logging.info("Resuming from epoch %d in %s", initial_epoch, output_dir)
                print(f"Resuming from the checkpoint of epoch {initial_epoch} in {output_dir}")
    settings["replicas"] = replicas
    settings["input_pipeline"] = config["input_pipeline"]
    if numpy_pipeline:
        # A resumed run goes on with the epoch orders of an uninterrupted one.
        train_ds.epoch = initial_epoch

    throughput = Throughput(config["batch_size"] * steps_per_epoch)
    if numpy_pipeline:
        knn_data = dict(
            train_data=(train.images, train.labels),
            test_data=(evaluation.images, evaluation.labels),
            batch_size=512,
        )
    else:
        knn_data = dict(
            train_data=data.evaluation_dataset(train, 512),
            test_data=data.evaluation_dataset(evaluation, 512),
        )
    knn = KNNMonitor(
        **knn_data,
        num_classes=train.num_classes,
        k=config["knn_k"],
        temperature=config["knn_temperature"],
        every_n_epochs=config["knn_every"] or config["epochs"],
    )
    callbacks = [
        NonFiniteLossGuard(),
        throughput,
        knn,
        # CSVLogger fixes its columns at the first epoch: give every epoch a
        # knn_accuracy entry (NaN where kNN was not evaluated).
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: logs.setdefault("knn_accuracy", float("nan"))
        ),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")),
        EpochCheckpoint(output_dir),
    ]
    history = {}
    if initial_epoch < config["epochs"]:
        history = model.fit(
            train_ds,
            epochs=config["epochs"],
            initial_epoch=initial_epoch,
            shuffle=False,  # the input pipeline reshuffles every epoch
            callbacks=callbacks,
            verbose=config["verbose"],
        ).history

    if config["epochs"] in knn.results:
        final_knn = knn.results[config["epochs"]]
    else:  # resumed after the last epoch had finished
        knn.set_model(model)
        final_knn = knn.evaluate()
    encoder_dir = os.path.join(output_dir, "encoder")
    from keras_simclr.export import export_encoder

    export_encoder(model, encoder_dir, image_size=image_size)
    metrics = {
        "knn_accuracy": float(final_knn),
        "knn_accuracy_per_epoch": {str(e): float(v) for e, v in knn.results.items()},
        "loss_per_epoch": [float(v) for v in history.get("loss", [])],
        "epochs": config["epochs"],
        "initial_epoch": initial_epoch,
        "optimizer_iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "images_per_second": throughput.images_per_second(),
        "train_examples": train.num_examples,
        "batch_size": config["batch_size"],
        "method": config["method"],
        "model": config["model"],
        "image_size": image_size,
        **settings,
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(
        f"kNN accuracy (k={config['knn_k']}, T={config['knn_temperature']}): "
        f"{metrics['knn_accuracy']:.4f} after {config['epochs']} epochs; "
        f"{metrics['images_per_second']:.1f} images/s; outputs in {output_dir}"
    )
    return metrics


def config_from_flags():
    return {name: FLAGS[name].value for name in FLAGS if name in _FLAG_NAMES}


_FLAG_NAMES = {
    "method", "queue_size", "moco_momentum", "shuffle_bn_splits", "dataset", "tfds_data_dir", "image_folder", "input_pipeline", "train_split", "eval_split", "train_examples",
    "model", "width_multiplier", "image_size", "augmentation", "batch_size", "epochs", "learning_rate",
    "learning_rate_scaling", "temperature", "optimizer", "momentum", "weight_decay",
    "warmup_epochs", "projection_dim", "head_layers", "output_dir", "resume", "seed",
    "mixed_precision", "knn_every", "knn_k", "knn_temperature", "steps_per_execution", "tpu", "verbose",
}


def main(argv):
    del argv
    try:
        run_pretraining(config_from_flags())
    except (PretrainError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"keras-simclr pretrain: {error}")
