"""`keras-simclr pretrain`: contrastive pretraining on real data, end to end.

Reads a tfds dataset (`--dataset cifar10`) or an image folder
(`--image_folder ROOT` holding `ROOT/<split>/<class>/*.jpg`; every image of
both splits is checked before the first step), trains a `ContrastiveModel`
(`--method simclr`, `simclr_v2`) or a `MoCoModel` (`--method moco_v2`),
evaluates weighted kNN (k=200, T=0.1, train split as the memory bank, eval
split as queries) every `--knn_every` epochs and at the end, and writes to
`--output_dir`:

    config.json                         the flags and what they resolved to
    checkpoint.keras                    the last completed epoch (resume) ...
    checkpoint.prev.keras               ... and the one before it
    log.csv, tensorboard/               per-epoch metrics and learning rate
    metrics.json                        final kNN accuracy, epochs, images/s
    encoder/                            the exported encoder (SavedModel + .keras)
    .lock                               held while a run writes the folder

Started again with the same `--output_dir` it resumes from the last completed
epoch with the same optimizer state. A larger `--epochs` extends the run (the
warmup + cosine schedule is planned again for the new total); any other
change to a flag that alters training is refused before any work, naming old
and new values (`--noresume` starts over). A finished run started again
reports its result and changes nothing. Every expected failure prints one
`error:` line and exits with status 2.

Several machines: start the same command on each, with `TF_CONFIG` naming
every worker (TensorFlow: `MultiWorkerMirroredStrategy`) or, on JAX,
`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES` and
`KERAS_DISTRIBUTION_PROCESS_ID` (`keras.distribution.initialize`,
`DataParallel` over every process's devices). `--batch_size` is the global
batch. Only the chief (the `chief` task, else worker or process 0) writes
`--output_dir` and holds its lock; the others write their copies to a
temporary folder they delete. A resume reads the chief's `--output_dir` on
every worker, so they must share it (one machine or a network file system).
On TensorFlow a worker that dies stops the others with an `error:` line
(`--collective_timeout` bounds the wait for one that hangs).
`examples/multi_worker_local.py` starts N workers on one machine.
"""

import contextlib
import math
import os

from absl import flags
from absl import logging

from keras_simclr.cli.errors import CLIError
from keras_simclr.cli.errors import run_subcommand
from keras_simclr.cli.run_config import CONFIG_FILE
from keras_simclr.cli.run_config import merge_resumed_flags
from keras_simclr.cli.run_config import read_run_config
from keras_simclr.cli.run_config import write_run_config
from keras_simclr.cli.run_lock import RunLock
from keras_simclr.cli.run_lock import describe_holder
from keras_simclr.cli.run_folder import LOG_FILE
from keras_simclr.cli.run_folder import METRICS_FILE
from keras_simclr.cli.run_folder import checkpoint_files
from keras_simclr.cli.run_folder import finished_result
from keras_simclr.cli.run_folder import fresh_start
from keras_simclr.cli.run_folder import log_rows
from keras_simclr.cli.run_folder import prepare_output_dir
from keras_simclr.cli.run_folder import truncate_log
from keras_simclr.cli.run_folder import write_json

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
    flags.DEFINE_bool("resume", True, "Continue the run in --output_dir if it has a checkpoint: "
                      "only a larger --epochs may differ from the recorded config.json; "
                      "--noresume starts over.")
    flags.DEFINE_bool("deterministic", False, "Deterministic kernels, and a data order and "
                      "augmentations derived from (seed, epoch, step): a run killed and resumed "
                      "ends with the weights of an uninterrupted one. Holds the training split "
                      "in memory; slower (TensorFlow turns XLA off).")
    flags.DEFINE_bool("skip_bad_images", False, "Drop unreadable or truncated images of "
                      "--image_folder (listed in a warning) instead of stopping with an error "
                      "that names them.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_bool("mixed_precision", False, "Train with the mixed_bfloat16 policy.")
    flags.DEFINE_integer("knn_every", 1, "Evaluate kNN every N epochs (0: only at the end).")
    flags.DEFINE_integer("knn_k", 200, "kNN neighbours.")
    flags.DEFINE_float("knn_temperature", 0.1, "kNN weighting temperature.")
    flags.DEFINE_integer("steps_per_execution", 1, "Steps per compiled execution (TPUs: e.g. 100).")
    flags.DEFINE_string("tpu", None, "TPU to train on: a name or address, 'local' on a Cloud TPU VM, '' on Colab.")
    flags.DEFINE_float("collective_timeout", 600.0, "Several workers (TF_CONFIG): seconds a "
                       "collective (gradient all-reduce, variable broadcast) waits for the other "
                       "workers before the run stops with an error (a worker that hangs); a worker "
                       "that dies is noticed within seconds regardless. 0: wait forever.")
    flags.DEFINE_integer("verbose", 1, "Keras progress: 0 silent, 1 progress bar, 2 one line per "
                         "epoch; 2 also prints the traceback of an error.")


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


class PretrainError(CLIError, ValueError):
    """Bad flags, data or run folder, found before or during a run."""


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


def load_split(config, split, image_size, skip_bad_images=False):
    """One split from --image_folder or --dataset, at `image_size` (None: native).

    An image folder's files are all checked first: a bad image raises
    `keras_simclr.data.BadImagesError` naming it, or with `skip_bad_images`
    is dropped with a warning.
    """
    from keras_simclr import data

    if config.get("input_pipeline") == "numpy":
        from keras_simclr.data import numpy_images

        return numpy_images.load_numpy_image_folder(
            config["image_folder"], split, image_size=image_size,
            skip_bad_images=skip_bad_images,
        )
    if config["image_folder"]:
        return data.load_image_folder(
            config["image_folder"], split, image_size=image_size,
            skip_bad_images=skip_bad_images,
        )
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
    if config["train_examples"] is not None and config["train_examples"] < 1:
        raise PretrainError(
            "--train_examples must be at least 1 (leave it unset for all). "
            f"Received: train_examples={config['train_examples']}"
        )
    if config["width_multiplier"] is not None and not config["width_multiplier"] > 0:
        raise PretrainError(
            "--width_multiplier must be > 0 (leave it unset for the model's own). "
            f"Received: width_multiplier={config['width_multiplier']}"
        )
    for name in ("learning_rate", "weight_decay", "warmup_epochs"):
        value = config[name]
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise PretrainError(
                f"--{name} must be a finite number >= 0. Received: {name}={value}"
            )
    if config["learning_rate"] == 0:
        raise PretrainError("--learning_rate must be > 0. Received: learning_rate=0.0")
    if not 0 <= config["momentum"] < 1:
        raise PretrainError(f"--momentum must be in [0, 1). Received: momentum={config['momentum']}")
    if config["method"] == "moco_v2" and config["queue_size"] < config["batch_size"]:
        raise PretrainError(
            "--queue_size must hold at least one global batch of keys. Received: "
            f"queue_size={config['queue_size']}, batch_size={config['batch_size']}"
        )
    if config["temperature"] is not None and not (
        math.isfinite(config["temperature"]) and config["temperature"] > 0
    ):
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


def _load_training_data(config):
    """`(train, evaluation, train_batches, image_size)`; every image checked first."""
    from keras_simclr import data

    skip = config["skip_bad_images"]
    image_size = config["image_size"]
    if config["image_folder"] and not image_size:
        # Square images at the first image's height, each split read (and
        # checked) once.
        image_size = data.image_folder_size(config["image_folder"], config["train_split"])[0]
    train = load_split(config, config["train_split"], image_size, skip)
    if config["input_pipeline"] == "numpy":
        if config["train_examples"]:
            train = train.take(config["train_examples"])
    else:
        if tuple(train.image_size) != (train.image_size[0],) * 2:
            # A tfds split of non-square images: square at its height.
            train = load_split(config, config["train_split"], train.image_size[0], skip)
        image_size = train.image_size[0]
        if config["train_examples"]:
            train = data.take_examples(train, config["train_examples"])
        train = train.cache()
    evaluation = load_split(config, config["eval_split"], image_size, skip)
    if config["input_pipeline"] == "tf":
        evaluation = evaluation.cache()
    # Raise for a batch larger than the data set, before a model is built.
    if config["input_pipeline"] == "numpy":
        batches = data.ShuffledBatches(
            train.images, train.labels, config["batch_size"], seed=config["seed"]
        )
    elif config["deterministic"]:
        # The order of every epoch derived from (seed, epoch): from memory.
        images, labels = data.dataset_arrays(train)
        batches = data.ShuffledBatches(images, labels, config["batch_size"], seed=config["seed"])
    else:
        batches = data.pretraining_dataset(train, config["batch_size"], seed=config["seed"])
    return train, evaluation, batches, image_size


def _local_encoder(config, image_size):
    """A copy of the encoder built outside any strategy (weights copied in later).

    Under a strategy with several replicas, `predict_on_batch` (what kNN
    feature extraction calls) runs every image batch on every replica and
    returns their concatenation (twice the rows on two replicas), and a
    SavedModel export would trace the replicated variables. The kNN monitor
    and the export use this one-device copy instead.
    """
    import keras_simclr as ks

    with ks.distribute.no_distribution():
        return ks.models.create_encoder(
            config["model"], image_size, width_multiplier=config["width_multiplier"]
        )


def _copy_encoder_weights(model, local):
    """`local` <- `model.encoder`'s weights (every worker: reading may be collective)."""
    from keras_simclr import distribute

    weights = model.encoder.get_weights()
    with distribute.no_distribution():
        if not local.built:
            local.build((None,) + tuple(model.encoder.input_shape[1:]))
        local.set_weights(weights)
    return local


def _knn_monitor(config, train, evaluation, batches, local_encoder=None):
    from keras_simclr import data
    from keras_simclr.evaluation import KNNMonitor

    if config["input_pipeline"] == "numpy":
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

    class LocalEncoderKNN(KNNMonitor):
        """Evaluates a one-device copy of the encoder, refreshed before each evaluation."""

        def evaluate(self):
            from keras_simclr import distribute

            _copy_encoder_weights(self.model, self.encoder)
            with distribute.no_distribution():
                return super().evaluate()

    monitor = KNNMonitor if local_encoder is None else LocalEncoderKNN
    return monitor(
        **knn_data,
        num_classes=train.num_classes,
        k=config["knn_k"],
        temperature=config["knn_temperature"],
        every_n_epochs=config["knn_every"] or config["epochs"],
        encoder=local_encoder,
    )


def run_pretraining(config, strategy=None):
    """Runs pretraining from a config dict (the flags, by name). Returns metrics.

    See the module docstring for what goes to `--output_dir` and what a
    resume may change. With `TF_CONFIG` naming several workers (one process
    per machine, each started with the same flags) it trains under
    `MultiWorkerMirroredStrategy`: only the chief (see
    `keras_simclr.distribute.worker_role`) writes `--output_dir`; every other
    worker writes its copies (it must save too: saving reads synchronized
    variables collectively) to a temporary folder it deletes at the end. A
    resume reads the chief's `--output_dir` on every worker: the workers
    must share that folder (one machine, or a network file system); workers
    that see different checkpoints stop with an error before training.

    Args:
        config: the flags by name (see `define_flags`).
        strategy: the `tf.distribute.Strategy` (or JAX distribution) to train
            under; `None` resolves it from `--tpu`, `TF_CONFIG` and the
            devices present (`keras_simclr.distribute.resolve_strategy`).
    """
    from keras_simclr import distribute

    flags = dict(config)
    _validate(method_defaults(flags))
    role = distribute.worker_role()
    output_dir = flags["output_dir"]
    if role.is_chief:
        prepare_output_dir(output_dir)
    saved = read_run_config(output_dir) if flags["resume"] else None
    finished = finished_result(output_dir, flags, saved)
    if finished is not None:
        print(
            f"The run in {output_dir} already finished {finished['epochs']} epochs: "
            f"kNN accuracy {finished['knn_accuracy']:.4f}. Nothing to do (raise --epochs "
            "to train on, or pass --noresume to start over)"
        )
        return finished
    # Decided before any worker can write: every worker resumes or none.
    resuming = flags["resume"] and bool(checkpoint_files(output_dir))
    if strategy is None:
        # Before TensorFlow runs any op (data loading included):
        # MultiWorkerMirroredStrategy configures collectives at program
        # startup, and waits here for every worker to join.
        try:
            strategy = distribute.resolve_strategy(
                tpu=flags["tpu"], collective_timeout=flags.get("collective_timeout")
            )
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise PretrainError(
                f"TF_CONFIG names {role.num_workers} workers, but TensorFlow already ran "
                "operations in this process, and MultiWorkerMirroredStrategy must be created "
                "before any: start `keras-simclr pretrain` in a fresh process (or call "
                f"run_pretraining before any TensorFlow op). ({error})"
            ) from None
    if not role.is_chief:
        return _run_as_worker(flags, saved, resuming, strategy, role)
    try:
        lock = RunLock(output_dir).acquire()
    except OSError as error:
        raise PretrainError(
            f"cannot write to --output_dir {output_dir}: {error.strerror or error}"
        ) from None
    try:
        if lock.previous_holder:
            print(
                f"Took over the lock of a run that stopped without releasing it "
                f"({describe_holder(lock.previous_holder)})"
            )
        return _run_guarded(flags, saved, resuming, strategy, role, output_dir)
    finally:
        lock.release()


# The worker's copies of the outputs (kept, not deleted) go here when set:
# tests compare a non-chief worker's final weights with the chief's.
WORKER_DIR_ENV = "KERAS_SIMCLR_WORKER_DIR"


def _run_as_worker(flags, saved, resuming, strategy, role):
    """A non-chief worker: trains in step with the chief, writes to a temporary folder."""
    import shutil
    import tempfile

    keep = os.environ.get(WORKER_DIR_ENV)
    if keep:
        os.makedirs(keep, exist_ok=True)
        write_dir = keep
    else:
        write_dir = tempfile.mkdtemp(prefix=f"keras-simclr-{role.task_type}{role.task_id}-")
    try:
        return _run_guarded(flags, saved, resuming, strategy, role, write_dir)
    finally:
        if not keep:
            shutil.rmtree(write_dir, ignore_errors=True)


def _run_guarded(flags, saved, resuming, strategy, role, write_dir):
    """`_run_locked`; with several workers, a lost worker becomes one error line."""
    import keras

    if role.num_workers > 1 and keras.backend.backend() == "jax":
        return _run_jax_process(flags, saved, resuming, strategy, role, write_dir)
    if role.num_workers == 1 or keras.backend.backend() != "tensorflow":
        return _run_locked(flags, saved, resuming, strategy, role, write_dir)
    import tensorflow as tf

    lost = (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    )
    try:
        return _run_locked(flags, saved, resuming, strategy, role, write_dir)
    except lost as error:
        message = " ".join((error.message or str(error)).split())
        _, found, after = message.partition("Collective ops is aborted by: ")
        reason = (after if found else message).split(" The tasks have crashed")[0]
        if len(reason) > 240:
            reason = reason[:240] + "..."
        raise PretrainError(
            f"{role.task_type} {role.task_id} of {role.num_workers} workers lost contact "
            f"with the others ({type(error).__name__}: {reason}): a worker stopped, "
            "hung or lost the network. Start every worker again with the same flags; "
            f"they resume from the chief's last checkpoint in {flags['output_dir']}"
        ) from None


def _run_jax_process(flags, saved, resuming, strategy, role, write_dir):
    """One of several JAX processes; a failed collective ends it with one error line.

    When another process dies, this one's next collective raises
    `JaxRuntimeError` ("Gloo AllGather failed: ... Connection reset by
    peer" on CPUs), and JAX's distributed service then aborts the process at
    exit (its shutdown barrier fails; status 134, a C++ stack). So the
    `error:` line is printed here and the process leaves with status 2
    without that shutdown (`os._exit`).
    """
    import sys

    import jax

    try:
        return _run_locked(flags, saved, resuming, strategy, role, write_dir)
    except jax.errors.JaxRuntimeError as error:
        message = " ".join(str(error).split())
        if len(message) > 240:
            message = message[:240] + "..."
        print(
            f"error: {role.task_type} {role.task_id} of {role.num_workers} JAX processes: a "
            f"collective failed (JaxRuntimeError: {message}): another process stopped or "
            "the network failed. Start every process again with the same flags; they "
            f"resume from the chief's last checkpoint in {flags['output_dir']}",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)


def _run_locked(flags, saved, resuming, strategy, role, write_dir):
    """Trains; reads a resumed run from `--output_dir`, writes to `write_dir`."""
    import keras

    from keras_simclr import distribute
    from keras_simclr.cli.checkpointing import EpochCheckpoint
    from keras_simclr.cli.checkpointing import LearningRateLogger
    from keras_simclr.cli.checkpointing import NonFiniteStateError
    from keras_simclr.cli.checkpointing import Throughput
    from keras_simclr.cli.checkpointing import last_good
    from keras_simclr.cli.checkpointing import load_checkpoint
    from keras_simclr.cli.epoch_seeds import EpochSeeds
    from keras_simclr.cli.epoch_seeds import enable_op_determinism
    from keras_simclr.cli.faults import FaultInjection
    from keras_simclr.evaluation import NonFiniteLossError
    from keras_simclr.evaluation import NonFiniteLossGuard

    output_dir = flags["output_dir"]
    if role.num_workers > 1 and not distribute.same_on_every_worker(strategy, int(resuming)):
        # The first collective: before the workers' paths (build, restore) diverge.
        raise PretrainError(
            f"some workers found a checkpoint in {output_dir} and others did not (this "
            f"{role.task_type} {role.task_id}: {'found' if resuming else 'none'}): every "
            "worker reads the chief's --output_dir to resume, so all must see the same "
            "folder (a shared file system); pass --noresume to start over"
        )
    if resuming and saved is None:
        raise PretrainError(
            f"{output_dir} holds a checkpoint but no {CONFIG_FILE} (it was written by "
            "an older keras-simclr); pass --noresume to start over"
        )
    if resuming:
        flags = merge_resumed_flags(saved["flags"], flags)
    config = method_defaults(flags)
    _validate(config)
    config["input_pipeline"] = resolve_input_pipeline(config)
    if config["deterministic"]:
        enable_op_determinism()

    # Data first: every data error (a bad image in either split included)
    # surfaces before a model is built or anything is written.
    train, evaluation, batches, image_size = _load_training_data(config)
    steps_per_epoch = train.num_examples // config["batch_size"]
    if resuming:
        recorded = saved.get("resolved", {}).get("train_examples")
        if recorded is not None and recorded != train.num_examples:
            raise PretrainError(
                f"the training split now has {train.num_examples} images; the run in "
                f"{output_dir} was started on {recorded}. Restore the data, or pass "
                "--noresume to start over"
            )

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

    if not resuming:
        fresh_start(write_dir)
    initial_epoch = 0
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        # Global BatchNorm whenever the batch is split over devices.
        model, settings = _build_model(
            config, image_size, train.num_classes, steps_per_epoch,
            sync_batchnorm=replicas > 1,
        )
        distribute.fix_symbolic_build(model)
        if resuming:
            model.build((None, image_size, image_size, 3))
            initial_epoch = load_checkpoint(model, output_dir, steps_per_epoch)
            logging.info("Resuming from epoch %d in %s", initial_epoch, output_dir)
            print(f"Resuming from the checkpoint of epoch {initial_epoch} in {output_dir}")
    if role.num_workers > 1 and not distribute.same_on_every_worker(strategy, initial_epoch):
        raise PretrainError(
            f"the workers would resume from different epochs (this {role.task_type} "
            f"{role.task_id}: {initial_epoch}, read from {output_dir}): every worker reads the "
            "chief's --output_dir to resume, so all must see the same folder (a shared file "
            "system); pass --noresume to start over"
        )
    settings.update(
        replicas=replicas,
        input_pipeline=config["input_pipeline"],
        image_size=image_size,
        train_examples=train.num_examples,
        steps_per_epoch=steps_per_epoch,
        workers=role.num_workers,
    )
    write_run_config(write_dir, flags, settings)
    if role.num_workers > 1 and keras.backend.backend() == "jax":
        # Each JAX process feeds its own part of every global batch.
        batches = distribute.process_part(batches, role.task_id, role.num_workers)
    if isinstance(batches, keras.utils.PyDataset):
        # A resumed run goes on with the epoch orders of an uninterrupted one.
        batches.epoch = initial_epoch

    log_path = os.path.join(write_dir, LOG_FILE)
    truncate_log(log_path, initial_epoch)
    throughput = Throughput(config["batch_size"] * steps_per_epoch)
    # Several replicas: kNN and the export use a one-device copy of the encoder.
    local_encoder = _local_encoder(config, image_size) if replicas > 1 else None
    knn = _knn_monitor(config, train, evaluation, batches, local_encoder)
    callbacks = [
        FaultInjection(),
        NonFiniteLossGuard(),
        throughput,
        LearningRateLogger(),
        # Before kNN: an evaluation failure never loses the epoch.
        EpochCheckpoint(write_dir, steps_per_epoch),
        knn,
        # CSVLogger fixes its columns at the first epoch: give every epoch a
        # knn_accuracy entry (NaN where kNN was not evaluated).
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: logs.setdefault("knn_accuracy", float("nan"))
        ),
        keras.callbacks.CSVLogger(log_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard")),
    ]
    if config["deterministic"]:
        callbacks.insert(0, EpochSeeds())
    if initial_epoch < config["epochs"]:
        try:
            model.fit(
                batches,
                epochs=config["epochs"],
                initial_epoch=initial_epoch,
                shuffle=False,  # the input pipeline reshuffles every epoch
                callbacks=callbacks,
                verbose=config["verbose"],
            )
        except NonFiniteLossError as error:
            raise PretrainError(f"{error} {last_good(write_dir)}") from None
        except NonFiniteStateError as error:
            raise PretrainError(str(error)) from None

    if config["epochs"] in knn.results:
        final_knn = knn.results[config["epochs"]]
    else:  # resumed after the last epoch had finished
        knn.set_model(model)
        final_knn = knn.evaluate()
    from keras_simclr.export import export_encoder

    if local_encoder is None:
        export_encoder(model, os.path.join(write_dir, "encoder"), image_size=image_size)
    else:
        # Every worker reads the weights (a collective for synchronized
        # variables); only the chief writes the export.
        _copy_encoder_weights(model, local_encoder)
        if role.is_chief:
            with distribute.no_distribution():
                export_encoder(
                    local_encoder, os.path.join(write_dir, "encoder"), image_size=image_size
                )
    rows = log_rows(log_path)
    # log.csv numbers epochs from 0; metrics from 1, as --epochs does.
    knn_per_epoch = {
        str(int(row["epoch"]) + 1): float(row["knn_accuracy"])
        for row in rows
        if row.get("knn_accuracy") not in (None, "", "nan")
    }
    knn_per_epoch[str(config["epochs"])] = float(final_knn)
    metrics = {
        "knn_accuracy": float(final_knn),
        "knn_accuracy_per_epoch": knn_per_epoch,
        "loss_per_epoch": [float(row["loss"]) for row in rows],
        "learning_rate_per_epoch": [float(row["learning_rate"]) for row in rows],
        "epochs": config["epochs"],
        "initial_epoch": initial_epoch,
        "optimizer_iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "images_per_second": throughput.images_per_second() or None,
        "batch_size": config["batch_size"],
        "method": config["method"],
        "model": config["model"],
        **settings,
    }
    write_json(os.path.join(write_dir, METRICS_FILE), metrics)
    ips = metrics["images_per_second"]
    print(
        f"kNN accuracy (k={config['knn_k']}, T={config['knn_temperature']}): "
        f"{metrics['knn_accuracy']:.4f} after {config['epochs']} epochs; "
        + (f"{ips:.1f} images/s; " if ips else "")
        + (f"outputs in {output_dir}" if role.is_chief
           else f"this worker's copies in {write_dir}; the chief writes {output_dir}")
    )
    return metrics


def config_from_flags():
    return {name: FLAGS[name].value for name in FLAGS if name in _FLAG_NAMES}


_FLAG_NAMES = {
    "method", "queue_size", "moco_momentum", "shuffle_bn_splits", "dataset", "tfds_data_dir", "image_folder", "input_pipeline", "train_split", "eval_split", "train_examples",
    "model", "width_multiplier", "image_size", "augmentation", "batch_size", "epochs", "learning_rate",
    "learning_rate_scaling", "temperature", "optimizer", "momentum", "weight_decay",
    "warmup_epochs", "projection_dim", "head_layers", "output_dir", "resume", "seed",
    "mixed_precision", "deterministic", "skip_bad_images", "knn_every", "knn_k", "knn_temperature", "steps_per_execution", "tpu", "verbose",
    "collective_timeout",
}


def main(argv):
    del argv
    config = config_from_flags()
    run_subcommand(run_pretraining, config, config["verbose"], prog="keras-simclr pretrain")
