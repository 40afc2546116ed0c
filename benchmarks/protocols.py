"""The throughput and quality protocols that each keras-simclr benchmark shares with lightly's.

`throughput` and `lightly_reference --mode throughput` take the same step arguments and
report the same timing fields; `quality` and `lightly_reference --mode quality` the same run
arguments, per-epoch records and summary. Standard library only at import.
"""

import math
import time

from benchmarks import common

KNN_K = 200
KNN_TEMPERATURE = 0.1


# ---------------------------------------------------------------- throughput


def add_throughput_arguments(parser):
    """`--steps`, `--warmup_steps` and `--num_images`."""
    parser.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    parser.add_argument(
        "--warmup_steps",
        type=int,
        default=2,
        help="untimed steps before them (the first one compiles), at least 1",
    )
    parser.add_argument(
        "--num_images",
        type=int,
        default=10_000,
        help="training JPEGs decoded for the end-to-end pipeline",
    )


def check_throughput_args(parser, args):
    """Applies `--tiny` (width 0.125, batch 16, 2 steps, 64 images) and checks the counts."""
    if args.tiny:
        args.width_multiplier, args.batch_size, args.steps, args.num_images = 0.125, 16, 2, 64
    common.check_steps(parser, args)
    if args.batch_size < 2 or args.num_images < args.batch_size:
        parser.error(
            f"Need 2 <= batch_size <= num_images. Received: "
            f"batch_size={args.batch_size}, num_images={args.num_images}"
        )
    return args


def throughput_timings(times, last_loss, args):
    """A mode's timing fields from its step boundaries (`common.step_rates`), loss and RSS."""
    return {
        **common.step_rates(times, args.warmup_steps, args.batch_size),
        "last_loss": last_loss,
        "peak_rss_mb": common.peak_rss_mb(),
    }


def print_modes(result):
    """The step-only / end-to-end table (images/s, ms/step, first step) of a throughput result."""
    print(f"{'mode':<12}{'images/s':>12}{'ms/step':>10}{'first step s':>14}")
    for name in ("step_only", "end_to_end"):
        r = result[name]
        print(
            f"{name:<12}{r['images_per_s']:>12.1f}{r['ms_per_step']:>10.1f}"
            f"{r['first_step_s']:>14.2f}"
        )
    if not all(math.isfinite(result[n]["last_loss"]) for n in ("step_only", "end_to_end")):
        print("warning: the loss is not finite")


# ---------------------------------------------------------------- quality


def add_run_arguments(parser):
    """The model, schedule, data and kNN arguments of both quality benchmarks."""
    parser.add_argument(
        "--model", default="resnet18_cifar", help="a keras_simclr.models.ENCODERS name"
    )
    parser.add_argument(
        "--width_multiplier", type=float, default=None, help="override the model's width"
    )
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (the most; --seconds may stop earlier)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop training at the first step boundary after this many seconds of "
        "training time (kNN time not counted)",
    )
    parser.add_argument(
        "--schedule_epochs",
        type=int,
        default=None,
        help="epochs the warmup + cosine learning-rate schedule is planned for; "
        "default: --epochs, or 100 with --seconds alone",
    )
    parser.add_argument(
        "--train_examples",
        type=int,
        default=common.CIFAR10_TRAIN,
        help="training JPEGs (a fixed shuffled subset); also the kNN memory bank",
    )
    parser.add_argument(
        "--eval_examples",
        type=int,
        default=common.CIFAR10_TEST,
        help="test JPEGs used as kNN queries (a fixed shuffled subset)",
    )
    parser.add_argument(
        "--knn_every",
        type=int,
        default=1,
        help="evaluate kNN every N epochs (0: only at the end); always at the end",
    )
    parser.add_argument(
        "--knn_k", type=int, default=KNN_K, help="kNN neighbours (capped at the bank size)"
    )
    parser.add_argument(
        "--knn_temperature", type=float, default=KNN_TEMPERATURE, help="kNN vote temperature"
    )
    parser.add_argument("--seed", type=int, default=0)
    common.add_data_arguments(parser)


def apply_tiny(args):
    """CI settings: width 0.125, batch 16, 128 training and 64 test images, 1 epoch by default."""
    args.width_multiplier, args.batch_size = 0.125, 16
    args.train_examples, args.eval_examples = 128, 64
    if args.epochs is None and args.seconds is None:
        args.epochs = 1


def check_run_arguments(parser, args):
    """Validates (and completes) the run arguments; `parser.error` on bad ones."""
    if args.epochs is None and args.seconds is None:
        parser.error("Give --epochs, --seconds or both. Received: neither")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1. Received: epochs={args.epochs}")
    if args.seconds is not None and not args.seconds > 0:
        parser.error(f"--seconds must be > 0. Received: seconds={args.seconds}")
    if args.schedule_epochs is None:
        args.schedule_epochs = args.epochs or 100
    if args.schedule_epochs < 1:
        parser.error(
            f"--schedule_epochs must be >= 1. Received: schedule_epochs={args.schedule_epochs}"
        )
    if not 1 <= args.train_examples <= common.CIFAR10_TRAIN:
        parser.error(
            f"--train_examples must be in [1, {common.CIFAR10_TRAIN}]. "
            f"Received: train_examples={args.train_examples}"
        )
    if not 1 <= args.eval_examples <= common.CIFAR10_TEST:
        parser.error(
            f"--eval_examples must be in [1, {common.CIFAR10_TEST}]. "
            f"Received: eval_examples={args.eval_examples}"
        )
    if args.batch_size < 2 or args.batch_size > args.train_examples:
        parser.error(
            f"Need 2 <= batch_size <= train_examples. Received: "
            f"batch_size={args.batch_size}, train_examples={args.train_examples}"
        )
    if args.knn_every < 0:
        parser.error(f"--knn_every must be >= 0. Received: knn_every={args.knn_every}")
    if args.knn_k < 1:
        parser.error(f"--knn_k must be >= 1. Received: knn_k={args.knn_k}")
    if not args.knn_temperature > 0:
        parser.error(
            f"--knn_temperature must be > 0. Received: knn_temperature={args.knn_temperature}"
        )
    if args.width_multiplier is not None and not args.width_multiplier > 0:
        parser.error(
            f"--width_multiplier must be > 0. Received: width_multiplier={args.width_multiplier}"
        )
    return args


def schedule_steps(args, steps_per_epoch):
    """(warmup steps, total steps): 10% of `--schedule_epochs` (at most 10) of warmup."""
    total = args.schedule_epochs * steps_per_epoch
    warmup_epochs = min(10.0, 0.1 * args.schedule_epochs)
    return min(int(round(warmup_epochs * steps_per_epoch)), total - 1), total


def close_epoch(epochs, args, number, steps, complete, train_s, loss, evaluate, last):
    """Records epoch `number`, with kNN (`evaluate()`, timed apart) when due; prints it.

    kNN runs every `--knn_every` epochs and after the `last` one. Appends the record to
    `epochs` (earlier records give the elapsed training time).
    """
    elapsed = train_s + (epochs[-1]["elapsed_train_s"] if epochs else 0.0)
    record = {
        "epoch": number,
        "steps": steps,
        "complete": complete,
        "train_s": train_s,
        "images_per_s": steps * args.batch_size / train_s if train_s else 0.0,
        "elapsed_train_s": elapsed,
        "loss": loss,
        "knn_accuracy": None,
        "knn_s": 0.0,
    }
    if last or (args.knn_every and number % args.knn_every == 0):
        start = time.perf_counter()
        record["knn_accuracy"] = evaluate()
        record["knn_s"] = time.perf_counter() - start
    epochs.append(record)
    print(
        f"epoch {number}: {steps} steps in {train_s:.1f} s, loss {loss:.4f}"
        + (
            f", kNN {record['knn_accuracy']:.4f} ({record['knn_s']:.1f} s)"
            if record["knn_accuracy"] is not None
            else ""
        ),
        flush=True,
    )
    return record


def summarize(epochs, args, steps_per_epoch, num_train, num_eval):
    """The fields both quality benchmarks report, from their per-epoch records."""
    train_s = sum(e["train_s"] for e in epochs)
    steps = sum(e["steps"] for e in epochs)
    evaluated = [e for e in epochs if e["knn_accuracy"] is not None]
    return {
        "knn": {
            "k": min(args.knn_k, num_train),
            "temperature": args.knn_temperature,
            "bank_examples": num_train,
            "query_examples": num_eval,
            "features": "encoder (backbone)",
        },
        "epochs": epochs,
        "epochs_completed": sum(e["complete"] for e in epochs),
        "steps": steps,
        "steps_per_epoch": steps_per_epoch,
        "train_s": train_s,
        "knn_s": sum(e["knn_s"] for e in epochs),
        "images_per_s": steps * args.batch_size / train_s if train_s else float("nan"),
        "final_knn_accuracy": evaluated[-1]["knn_accuracy"] if evaluated else None,
        "final_loss": epochs[-1]["loss"] if epochs else None,
    }


def print_report(result, title):
    """The per-epoch table and the final kNN line of a quality result."""
    print(f"\n{title}")
    print(
        f"{'epoch':>6}{'steps':>7}{'train s':>10}{'images/s':>10}{'loss':>9}{'kNN acc':>9}"
        f"{'kNN s':>8}"
    )
    for e in result["epochs"]:
        knn = "-" if e["knn_accuracy"] is None else f"{e['knn_accuracy']:.4f}"
        mark = "" if e["complete"] else " (stopped)"
        print(
            f"{e['epoch']:>6}{e['steps']:>7}{e['train_s']:>10.1f}{e['images_per_s']:>10.1f}"
            f"{e['loss']:>9.4f}{knn:>9}{e['knn_s']:>8.1f}{mark}"
        )
    print(
        f"final kNN accuracy (k={result['knn']['k']}, T={result['knn']['temperature']}): "
        f"{result['final_knn_accuracy']:.4f} after {result['steps']} steps; training "
        f"{result['train_s']:.1f} s ({result['images_per_s']:.1f} images/s, first step "
        f"{result['compile_s']:.2f} s); kNN {result['knn_s']:.1f} s; "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    if not all(math.isfinite(e["loss"]) for e in result["epochs"]):
        print("warning: the loss is not finite")
