"""`keras-simclr pretrain`: contrastive pretraining on real data, end to end.

Reads a tfds dataset (`--dataset cifar10`) or an image folder
(`--image_folder ROOT`: labelled splits `ROOT/<split>/<class>/*.jpg`, or any
other folder of images, read whole and unlabelled; every image is checked
before the first step), trains a `ContrastiveModel` (`--method simclr`,
`simclr_v2`) or a `MoCoModel` (`--method moco_v2`), evaluates weighted kNN
(k=200, T=0.1, train split as the memory bank, eval split as queries, or
`--eval_folder`'s splits; skipped without labels) before the first step and
every `--knn_every` epochs, and writes to `--output_dir`:

    config.json                         the flags and what they resolved to
    checkpoint.keras                    the last completed epoch (resume) ...
    checkpoint.prev.keras               ... and the one before it
    log.csv, tensorboard/               per-epoch metrics and learning rate
    augmentations.png, curves.png       two views of a few images; per-epoch curves
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

Batches larger than memory allows: `--micro_batch_size K` encodes each
replica's batch (MoCo: its queries) in chunks of K images and recomputes
each chunk in the backward pass (gradient caching): the gradients of the
whole batch at the activation memory of K images, for about one more
forward pass; BatchNorm then normalizes each chunk alone, never
synchronized across replicas. `--memory_size M` (`simclr`, `simclr_v2`)
adds SimCLR v2's memory: a momentum copy of the encoder and head
(`--memory_momentum`, 0.999) whose last M projections are extra
negatives, kept in every checkpoint. It is off by default: the copy lags the model by about 1000
steps, so a short run's memory holds stale negatives.

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

import os

from absl import flags

from keras_simclr.cli.errors import PretrainError
from keras_simclr.cli.errors import run_subcommand
from keras_simclr.cli.flag_config import config_from_flags
from keras_simclr.cli.pretrain_flags import define_flags
from keras_simclr.cli.pretrain_flags import validate_flags
from keras_simclr.cli.run_config import read_run_config
from keras_simclr.cli.run_folder import checkpoint_files
from keras_simclr.cli.run_folder import finished_result
from keras_simclr.cli.run_folder import prepare_output_dir
from keras_simclr.cli.run_lock import RunLock
from keras_simclr.cli.run_lock import describe_holder
from keras_simclr.cli.training import train

__all__ = ["PretrainError", "define_flags", "main", "run_pretraining"]


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
    validate_flags(flags)
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
            # set_global: Keras's JAX fit, evaluate and predict (the kNN
            # too) shard their batches over the global distribution.
            strategy = distribute.resolve_strategy(
                tpu=flags["tpu"],
                collective_timeout=flags.get("collective_timeout"),
                set_global=True,
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
    """`train`; with several workers, a lost worker becomes one error line."""
    import keras

    if role.num_workers > 1 and keras.backend.backend() == "jax":
        return _run_jax_process(flags, saved, resuming, strategy, role, write_dir)
    if role.num_workers == 1 or keras.backend.backend() != "tensorflow":
        return train(flags, saved, resuming, strategy, role, write_dir)
    import tensorflow as tf

    lost = (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    )
    try:
        return train(flags, saved, resuming, strategy, role, write_dir)
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
        return train(flags, saved, resuming, strategy, role, write_dir)
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


def main(argv):
    del argv
    config = config_from_flags(define_flags, flags.FLAGS)
    run_subcommand(run_pretraining, config, config["verbose"], prog="keras-simclr pretrain")
