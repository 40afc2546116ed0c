"""One `keras-simclr pretrain` run on one worker: data, recipe, fit, kNN, export.

`run_pretraining` (in `pretrain.py`) decides where the run writes and holds
the folder's lock; `train` does the rest in this order, so that every data
error surfaces before a model is built or anything is written: check that the
workers agree on resuming, merge the recorded flags, load and check the data,
build the recipe's model (inside the strategy's scope), restore the
checkpoint, fit with the run's callbacks, export the encoder and write
`metrics.json`.
"""

import os

from absl import logging

from keras_simclr import distribute
from keras_simclr import recipes
from keras_simclr.cli.data_sources import EVALUATION_BATCH_SIZE
from keras_simclr.cli.data_sources import knn_skip_reason
from keras_simclr.cli.data_sources import load_training_data
from keras_simclr.cli.errors import PretrainError
from keras_simclr.cli.local_encoder import LocalEncoderKNN
from keras_simclr.cli.local_encoder import copy_encoder_weights
from keras_simclr.cli.local_encoder import local_encoder
from keras_simclr.cli.pretrain_flags import recipe_arguments
from keras_simclr.cli.pretrain_flags import resolve_input_pipeline
from keras_simclr.cli.pretrain_flags import validate_flags
from keras_simclr.cli.run_config import CONFIG_FILE
from keras_simclr.cli.run_config import merge_resumed_flags
from keras_simclr.cli.run_config import write_run_config
from keras_simclr.cli.run_folder import AUGMENTATIONS_FILE
from keras_simclr.cli.run_folder import CURVES_FILE
from keras_simclr.cli.run_folder import LOG_FILE
from keras_simclr.cli.run_folder import METRICS_FILE
from keras_simclr.cli.run_folder import fresh_start
from keras_simclr.cli.run_folder import log_rows
from keras_simclr.cli.run_folder import truncate_log
from keras_simclr.cli.run_folder import write_json

# The recipe's settings recorded in config.json and metrics.json.
RECORDED_SETTINGS = (
    "preset",
    "temperature",
    "peak_learning_rate",
    "warmup_steps",
    "total_steps",
    "micro_batch_size",
    "memory_size",
    "memory_momentum",
)


def _agree_on(strategy, role, value, what, output_dir):
    """Raises unless every worker holds the same `value` (a collective)."""
    if role.num_workers > 1 and not distribute.same_on_every_worker(strategy, int(value)):
        raise PretrainError(
            f"the workers disagree on {what} (this {role.task_type} {role.task_id}: {value}, "
            f"read from {output_dir}): every worker reads the chief's --output_dir to resume, "
            "so all must see the same folder (a shared file system); pass --noresume to "
            "start over"
        )


def _resolved_config(flags, saved, resuming, output_dir):
    if resuming and saved is None:
        raise PretrainError(
            f"{output_dir} holds a checkpoint but no {CONFIG_FILE} (it was written by "
            "an older keras-simclr); pass --noresume to start over"
        )
    if resuming:
        flags = merge_resumed_flags(saved["flags"], flags)
    config = dict(flags)
    validate_flags(config)
    config["input_pipeline"] = resolve_input_pipeline(config)
    return flags, config


def _check_batch_split(config, replicas):
    distribute.check_global_batch(config["batch_size"], replicas)
    per_replica = config["batch_size"] // replicas
    micro_batch_size = config["micro_batch_size"]
    if micro_batch_size is not None and per_replica % micro_batch_size:
        raise PretrainError(
            "--micro_batch_size must divide the per-replica batch (each replica encodes its "
            "part in chunks). Received: "
            f"micro_batch_size={micro_batch_size}, batch_size={config['batch_size']} "
            f"over {replicas} replica(s)"
        )
    if config["method"] == "moco_v2" and per_replica % config["shuffle_bn_splits"]:
        raise PretrainError(
            "--shuffle_bn_splits must divide the per-replica batch. Received: "
            f"shuffle_bn_splits={config['shuffle_bn_splits']}, batch_size={config['batch_size']} "
            f"over {replicas} replica(s)"
        )


def _callbacks(config, write_dir, steps_per_epoch, knn, throughput, knn_at_init):
    import keras

    from keras_simclr.cli.checkpointing import EpochCheckpoint
    from keras_simclr.cli.checkpointing import LearningRateLogger
    from keras_simclr.cli.epoch_seeds import EpochSeeds
    from keras_simclr.cli.faults import FaultInjection
    from keras_simclr.evaluation import NonFiniteLossGuard
    from keras_simclr.plot import TrainingCurves

    callbacks = [
        FaultInjection(),
        NonFiniteLossGuard(),
        throughput,
        LearningRateLogger(),
        # Before kNN: an evaluation failure never loses the epoch.
        EpochCheckpoint(write_dir, steps_per_epoch),
        *([knn] if knn is not None else []),
        # CSVLogger fixes its columns at the first epoch: give every epoch a
        # knn_accuracy entry (NaN where kNN was not evaluated).
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: logs.setdefault("knn_accuracy", float("nan"))
        ),
        keras.callbacks.CSVLogger(os.path.join(write_dir, LOG_FILE), append=True),
        # After kNN and the knn_accuracy default: the epoch's logs are complete.
        # A resumed run draws its earlier epochs from log.csv (truncated already).
        TrainingCurves(
            os.path.join(write_dir, CURVES_FILE),
            history=log_rows(os.path.join(write_dir, LOG_FILE)),
            knn_at_init=knn_at_init,
        ),
        keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard")),
    ]
    if config["deterministic"]:
        callbacks.insert(0, EpochSeeds())
    return callbacks


def _knn_monitor(config, bank, queries, encoder):
    from keras_simclr.evaluation import KNNMonitor

    monitor = KNNMonitor if encoder is None else LocalEncoderKNN
    return monitor(
        train_data=bank.evaluation_batches(EVALUATION_BATCH_SIZE),
        test_data=queries.evaluation_batches(EVALUATION_BATCH_SIZE),
        num_classes=bank.num_classes,
        k=config["knn_k"],
        temperature=config["knn_temperature"],
        every_n_epochs=config["knn_every"] or config["epochs"],
        encoder=encoder,
    )


def _knn_at_init(knn, model, saved, resuming):
    """The kNN accuracy of the random initial encoder: the baseline training must beat.

    Evaluated before the first step of a new run (printed); a resumed run
    keeps the value its `config.json` recorded.
    """
    if resuming:
        return (saved.get("resolved") or {}).get("knn_accuracy_at_init")
    knn.set_model(model)
    accuracy = float(knn.evaluate())
    print(f"kNN accuracy of the random initial encoder: {accuracy:.4f}")
    return accuracy


def _fit(model, batches, config, initial_epoch, callbacks, write_dir):
    from keras_simclr.cli.checkpointing import NonFiniteStateError
    from keras_simclr.cli.checkpointing import last_good
    from keras_simclr.evaluation import NonFiniteLossError

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


def _export(model, encoder, role, write_dir, image_size):
    from keras_simclr.export import export_encoder

    path = os.path.join(write_dir, "encoder")
    if encoder is None:
        export_encoder(model, path, image_size=image_size)
        return
    # Every worker reads the weights (a collective for synchronized
    # variables); only the chief writes the export.
    copy_encoder_weights(model, encoder)
    if role.is_chief:
        with distribute.no_distribution():
            export_encoder(encoder, path, image_size=image_size)


def _metrics(model, config, final_knn, initial_epoch, throughput, settings, write_dir):
    import keras

    rows = log_rows(os.path.join(write_dir, LOG_FILE))
    # log.csv numbers epochs from 0; metrics from 1, as --epochs does.
    knn_per_epoch = {
        str(int(row["epoch"]) + 1): float(row["knn_accuracy"])
        for row in rows
        if row.get("knn_accuracy") not in (None, "", "nan")
    }
    if final_knn is not None:
        knn_per_epoch[str(config["epochs"])] = float(final_knn)
    return {
        "knn_accuracy": None if final_knn is None else float(final_knn),
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


def _summary(config, metrics, role, output_dir, write_dir):
    """The run's last console line: trained kNN beside the random encoder's, speed, outputs."""
    epochs = f"{config['epochs']} epoch" + ("s" if config["epochs"] != 1 else "")
    parts = []
    if metrics["knn_accuracy"] is None:
        parts.append(f"Pretrained {epochs} (no kNN evaluation)")
    else:
        knn = (
            f"kNN accuracy (k={config['knn_k']}, T={config['knn_temperature']}): "
            f"{metrics['knn_accuracy']:.4f} after {epochs}"
        )
        if metrics["knn_accuracy_at_init"] is not None:
            knn += f" ({metrics['knn_accuracy_at_init']:.4f} at initialisation)"
        parts.append(knn)
    if metrics["images_per_second"]:
        parts.append(f"{metrics['images_per_second']:.1f} images/s")
    if role.is_chief:
        parts.append(f"outputs in {output_dir}")
    else:
        parts.append(f"this worker's copies in {write_dir}; the chief writes {output_dir}")
    return "; ".join(parts)


def train(flags, saved, resuming, strategy, role, write_dir):
    """Trains one run; reads a resumed run from `--output_dir`, writes to `write_dir`.

    Args:
        flags: the flags as given.
        saved: the run's recorded `config.json` (or `None`).
        resuming: whether to resume from `--output_dir`'s checkpoint.
        strategy: what `keras_simclr.distribute.resolve_strategy` returned.
        role: this process's `keras_simclr.distribute.WorkerRole`.
        write_dir: where this worker writes (the chief: `--output_dir`).

    Returns:
        the metrics written to `metrics.json`.
    """
    import keras

    from keras_simclr.cli.checkpointing import Throughput
    from keras_simclr.cli.checkpointing import load_checkpoint
    from keras_simclr.cli.epoch_seeds import enable_op_determinism

    output_dir = flags["output_dir"]
    # The first collective: before the workers' paths (build, restore) diverge.
    _agree_on(strategy, role, resuming, "finding a checkpoint", output_dir)
    flags, config = _resolved_config(flags, saved, resuming, output_dir)
    if config["deterministic"]:
        enable_op_determinism()

    data = load_training_data(config)
    train_data, batches, image_size = data.train, data.batches, data.image_size
    if resuming:
        recorded = saved.get("resolved", {}).get("train_examples")
        if recorded is not None and recorded != train_data.num_examples:
            raise PretrainError(
                f"the training split now has {train_data.num_examples} images; the run in "
                f"{output_dir} was started on {recorded}. Restore the data, or pass "
                "--noresume to start over"
            )
    replicas = distribute.replicas_of(strategy)
    _check_batch_split(config, replicas)

    keras.utils.set_random_seed(config["seed"])
    if config["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if not resuming:
        fresh_start(write_dir)
    initial_epoch = 0
    with strategy.scope():
        recipe = recipes.build(
            config["method"],
            image_size=image_size,
            train_examples=train_data.num_examples,
            num_classes=data.probe_classes,
            # Global BatchNorm whenever the batch is split over devices, but
            # not with --micro_batch_size: each chunk normalizes alone, as
            # unsynchronized per-replica BatchNorm does (the recipe turns
            # synchronization off with gradient caching too).
            sync_batchnorm=replicas > 1 and config["micro_batch_size"] is None,
            **recipe_arguments(config),
        )
        model = recipe.model
        steps_per_epoch = recipe.settings["steps_per_epoch"]
        distribute.fix_symbolic_build(model)
        if resuming:
            model.build((None, image_size, image_size, 3))
            initial_epoch = load_checkpoint(model, output_dir, steps_per_epoch)
            logging.info("Resuming from epoch %d in %s", initial_epoch, output_dir)
            print(f"Resuming from the checkpoint of epoch {initial_epoch} in {output_dir}")
    _agree_on(strategy, role, initial_epoch, "the epoch to resume from", output_dir)
    # Several replicas: kNN and the export use a one-device copy of the encoder.
    encoder = local_encoder(config, image_size) if replicas > 1 else None
    if data.knn_bank is None:
        knn = knn_at_init = None
        print(knn_skip_reason(config))
    else:
        knn = _knn_monitor(config, data.knn_bank, data.knn_queries, encoder)
        knn_at_init = _knn_at_init(knn, model, saved, resuming)
    settings = {name: recipe.settings[name] for name in RECORDED_SETTINGS}
    settings.update(
        replicas=replicas,
        input_pipeline=config["input_pipeline"],
        image_size=image_size,
        train_examples=train_data.num_examples,
        steps_per_epoch=steps_per_epoch,
        workers=role.num_workers,
        knn_accuracy_at_init=knn_at_init,
    )
    write_run_config(write_dir, flags, settings)
    from keras_simclr.plot import save_augmentations

    # A few training images and two views of each, from the run's own augmenter.
    # Every worker draws them (on JAX the augmenter's random state is one array
    # over all processes, so touching it is collective); each writes its own copy.
    save_augmentations(
        os.path.join(write_dir, AUGMENTATIONS_FILE),
        train_data.take(8).arrays()[0],
        recipe.augmenter,
        seed=config["seed"],
    )
    if role.num_workers > 1 and keras.backend.backend() == "jax":
        # Each JAX process feeds its own part of every global batch.
        batches = distribute.process_part(batches, role.task_id, role.num_workers)
    if isinstance(batches, keras.utils.PyDataset):
        # A resumed run goes on with the epoch orders of an uninterrupted one.
        batches.epoch = initial_epoch

    truncate_log(os.path.join(write_dir, LOG_FILE), initial_epoch)
    throughput = Throughput(config["batch_size"] * steps_per_epoch)
    if initial_epoch < config["epochs"]:
        callbacks = _callbacks(config, write_dir, steps_per_epoch, knn, throughput, knn_at_init)
        _fit(model, batches, config, initial_epoch, callbacks, write_dir)
    if knn is None:
        final_knn = None
    elif config["epochs"] in knn.results:
        final_knn = knn.results[config["epochs"]]
    else:  # resumed after the last epoch had finished
        knn.set_model(model)
        final_knn = knn.evaluate()
    _export(model, encoder, role, write_dir, image_size)
    metrics = _metrics(model, config, final_knn, initial_epoch, throughput, settings, write_dir)
    write_json(os.path.join(write_dir, METRICS_FILE), metrics)
    print(_summary(config, metrics, role, output_dir, write_dir))
    return metrics
