"""SimCLR pretraining quality: weighted kNN accuracy against training wall time.

Pretrains a `ContrastiveModel` on the real CIFAR-10 JPEGs exactly as
`keras-simclr pretrain` builds it (the model, the augmentation preset, the
NT-Xent temperature, LARS with linear warmup and cosine decay and the
learning-rate scaling all come from `keras_simclr.cli.pretrain`), for
`--epochs` epochs or until `--seconds` seconds of training, and after every
`--knn_every`-th epoch (and at the end) reports the weighted kNN top-1
accuracy (k=200, T=0.1, `keras_simclr.evaluation.knn_accuracy`: cosine
similarity of L2-normalized encoder features, votes weighted by
`exp(similarity / T)`) with the training split's images as the memory bank
and the test split's images as the queries.

Timing:
- the training time of an epoch runs from the start of the epoch to the end
  of its last step (every step is synchronized: its loss is read); it
  includes the first step's compilation (also reported on its own as
  `compile_s`) and the input pipeline, and excludes the kNN evaluation,
  which is timed apart (`knn_s`);
- `--seconds S` stops training at the first step boundary after S seconds
  of training time (kNN time not counted); the partial epoch is then
  evaluated and reported with `"complete": false`;
- images/s is training images over training time.

The JPEGs are decoded once into memory (TensorFlow: a parallel `tf.data`
map; JAX: Pillow in a thread pool, `benchmarks/throughput.py`'s helpers) and
fed every epoch in a new shuffled order (TensorFlow:
`keras_simclr.data.load_arrays` + `pretraining_dataset`; JAX: NumPy batches
from a background thread), in full batches.

`benchmarks/lightly_reference.py --mode quality` runs the same protocol with
lightly (PyTorch) and writes the same JSON fields, so the two runs compare
side by side.

Examples (from the repository root):

    # ResNet-18 (CIFAR stem), batch 256, 10 epochs on TensorFlow (CPU)
    python benchmarks/quality.py --backend tensorflow --epochs 10 \\
        --output quality_tf_10ep.json

    # 30 minutes of training, schedule planned for 100 epochs, kNN every 5
    python benchmarks/quality.py --seconds 1800 --schedule_epochs 100 \\
        --knn_every 5 --output quality_30min.json

    # the CI smoke test: a narrow network, 128 images, one epoch
    python benchmarks/quality.py --tiny --output /tmp/quality.json
"""

import argparse
import datetime
import math
import os
import shlex
import sys
import time

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCHMARKS_DIR)
if BENCHMARKS_DIR not in sys.path:
    sys.path.insert(0, BENCHMARKS_DIR)

import throughput  # noqa: E402  (benchmarks/throughput.py: stdlib-only at import)

DEFAULT_DATA = throughput.DEFAULT_DATA
KNN_K = 200
KNN_TEMPERATURE = 0.1
CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000


def add_run_arguments(parser):
    """The arguments `quality.py` and `lightly_reference.py` share."""
    parser.add_argument("--model", default="resnet18_cifar", help="a keras_simclr.models.ENCODERS name")
    parser.add_argument("--width_multiplier", type=float, default=None, help="override the model's width")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (the most; --seconds may stop earlier)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop training at the first step boundary after this many seconds of "
                             "training time (kNN time not counted)")
    parser.add_argument("--schedule_epochs", type=int, default=None,
                        help="epochs the warmup + cosine learning-rate schedule is planned for; "
                             "default: --epochs, or 100 with --seconds alone")
    parser.add_argument("--train_examples", type=int, default=CIFAR10_TRAIN,
                        help="training JPEGs (a fixed shuffled subset); also the kNN memory bank")
    parser.add_argument("--eval_examples", type=int, default=CIFAR10_TEST,
                        help="test JPEGs used as kNN queries (a fixed shuffled subset)")
    parser.add_argument("--knn_every", type=int, default=1,
                        help="evaluate kNN every N epochs (0: only at the end); always at the end")
    parser.add_argument("--knn_k", type=int, default=KNN_K, help="kNN neighbours (capped at the bank size)")
    parser.add_argument("--knn_temperature", type=float, default=KNN_TEMPERATURE,
                        help="kNN vote temperature")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared cifar10_jpeg.npz")
    parser.add_argument("--output", default=None, help="JSON file to write")


def check_run_arguments(parser, args):
    """Validates (and completes) the shared arguments; `parser.error` on bad ones."""
    if args.epochs is None and args.seconds is None:
        parser.error("Give --epochs, --seconds or both. Received: neither")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1. Received: epochs={args.epochs}")
    if args.seconds is not None and not args.seconds > 0:
        parser.error(f"--seconds must be > 0. Received: seconds={args.seconds}")
    if args.schedule_epochs is None:
        args.schedule_epochs = args.epochs or 100
    if args.schedule_epochs < 1:
        parser.error(f"--schedule_epochs must be >= 1. Received: schedule_epochs={args.schedule_epochs}")
    if not 1 <= args.train_examples <= CIFAR10_TRAIN:
        parser.error(f"--train_examples must be in [1, {CIFAR10_TRAIN}]. "
                     f"Received: train_examples={args.train_examples}")
    if not 1 <= args.eval_examples <= CIFAR10_TEST:
        parser.error(f"--eval_examples must be in [1, {CIFAR10_TEST}]. "
                     f"Received: eval_examples={args.eval_examples}")
    if args.batch_size < 2 or args.batch_size > args.train_examples:
        parser.error(f"Need 2 <= batch_size <= train_examples. Received: "
                     f"batch_size={args.batch_size}, train_examples={args.train_examples}")
    if args.knn_every < 0:
        parser.error(f"--knn_every must be >= 0. Received: knn_every={args.knn_every}")
    if args.knn_k < 1:
        parser.error(f"--knn_k must be >= 1. Received: knn_k={args.knn_k}")
    if not args.knn_temperature > 0:
        parser.error(f"--knn_temperature must be > 0. Received: knn_temperature={args.knn_temperature}")
    if args.width_multiplier is not None and not args.width_multiplier > 0:
        parser.error(f"--width_multiplier must be > 0. Received: width_multiplier={args.width_multiplier}")
    return args


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    add_run_arguments(parser)
    parser.add_argument("--tiny", action="store_true",
                        help="CI mode: width 0.125, batch 16, 128 training and 64 test images, "
                             "1 epoch (unless --epochs or --seconds is given)")
    args = parser.parse_args(argv)
    if args.tiny:
        apply_tiny(args)
    return check_run_arguments(parser, args)


def apply_tiny(args):
    """The CI settings (shared with `lightly_reference.py --tiny`).

    A narrow network, batch 16, 128 training and 64 test images; one epoch
    unless `--epochs` or `--seconds` is given.
    """
    args.width_multiplier, args.batch_size = 0.125, 16
    args.train_examples, args.eval_examples = 128, 64
    if args.epochs is None and args.seconds is None:
        args.epochs = 1


def read_split(path, split, count):
    """`count` JPEGs (bytes) of `split` and their labels, in a fixed shuffled order.

    The order is a seed-0 permutation of the split (the file is sorted by
    class), the same as `throughput.read_jpegs` for the training split, so
    every class appears in a small subset.

    Returns:
        `(jpegs, labels)`: a list of bytes and an int32 `(count,)` array.
    """
    import numpy as np

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"The CIFAR-10 JPEGs are read from {path}, which is missing. Pass --data or set "
            "KERAS_SIMCLR_DATA to the folder holding cifar10_jpeg.npz."
        )
    data = np.load(path)
    offsets, blob = data[f"{split}_offsets"], data[f"{split}_bytes"]
    chosen = np.random.default_rng(0).permutation(len(offsets) - 1)[:count]
    labels = data[f"{split}_labels"][chosen].astype("int32")
    return [blob[offsets[i]:offsets[i + 1]].tobytes() for i in chosen], labels


def schedule_steps(args, steps_per_epoch):
    """(warmup steps, total steps) of the learning-rate schedule, as the CLI plans them."""
    total = args.schedule_epochs * steps_per_epoch
    warmup_epochs = min(10.0, 0.1 * args.schedule_epochs)
    return min(int(round(warmup_epochs * steps_per_epoch)), total - 1), total


def summarize(epochs, args, steps_per_epoch, num_train, num_eval):
    """The fields both quality benchmarks report, from their per-epoch records."""
    train_s = sum(e["train_s"] for e in epochs)
    steps = sum(e["steps"] for e in epochs)
    evaluated = [e for e in epochs if e["knn_accuracy"] is not None]
    return {
        "knn": {"k": min(args.knn_k, num_train), "temperature": args.knn_temperature,
                "bank_examples": num_train, "query_examples": num_eval, "features": "encoder (backbone)"},
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
    print(f"\n{title}")
    print(f"{'epoch':>6}{'steps':>7}{'train s':>10}{'images/s':>10}{'loss':>9}{'kNN acc':>9}{'kNN s':>8}")
    for e in result["epochs"]:
        knn = "-" if e["knn_accuracy"] is None else f"{e['knn_accuracy']:.4f}"
        mark = "" if e["complete"] else " (stopped)"
        print(f"{e['epoch']:>6}{e['steps']:>7}{e['train_s']:>10.1f}{e['images_per_s']:>10.1f}"
              f"{e['loss']:>9.4f}{knn:>9}{e['knn_s']:>8.1f}{mark}")
    print(f"final kNN accuracy (k={result['knn']['k']}, T={result['knn']['temperature']}): "
          f"{result['final_knn_accuracy']:.4f} after {result['steps']} steps; training "
          f"{result['train_s']:.1f} s ({result['images_per_s']:.1f} images/s, first step "
          f"{result['compile_s']:.2f} s); kNN {result['knn_s']:.1f} s; peak RSS {result['peak_rss_mb']:.0f} MB")
    if not all(math.isfinite(e["loss"]) for e in result["epochs"]):
        print("warning: the loss is not finite")


def build_model(args, steps_per_epoch):
    """The CLI's model, augmentation, temperature, LARS and schedule (`cli.pretrain._build_model`)."""
    import keras

    from keras_simclr.cli import pretrain

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    config = pretrain.method_defaults({
        "method": "simclr", "model": args.model, "width_multiplier": args.width_multiplier,
        "augmentation": "auto", "temperature": None, "head_layers": None, "projection_dim": 128,
        "optimizer": None, "learning_rate": None, "learning_rate_scaling": "linear",
        "momentum": 0.9, "weight_decay": None, "batch_size": args.batch_size,
        "epochs": args.schedule_epochs, "warmup_epochs": None, "seed": args.seed,
        "steps_per_execution": 1,
    })
    # num_classes=None: no online probe, as in the lightly reference.
    model, settings = pretrain._build_model(config, 32, None, steps_per_epoch)
    settings.update(optimizer=config["optimizer"], weight_decay=config["weight_decay"],
                    head_layers=config["head_layers"], projection_dim=config["projection_dim"])
    return model, settings


def make_clock(args, evaluate, max_epochs):
    """A callback that times the steps, stops after --seconds and runs kNN per epoch."""
    import keras

    class TrainingClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epochs, self.train_s, self.first_step_s = [], 0.0, None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = self.last_step = time.perf_counter()
            self.steps, self.loss = 0, float("nan")

        def on_train_batch_end(self, batch, logs=None):
            self.loss = float(logs["loss"])  # waits for the (asynchronously dispatched) step
            self.last_step = time.perf_counter()
            self.steps += 1
            if self.first_step_s is None:
                self.first_step_s = self.last_step - self.epoch_start
            if args.seconds and self.train_s + self.last_step - self.epoch_start >= args.seconds:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            train_s = self.last_step - self.epoch_start
            self.train_s += train_s
            number = epoch + 1
            last = self.model.stop_training or number == max_epochs
            record = {
                "epoch": number, "steps": self.steps, "complete": self.steps == self.params["steps"],
                "train_s": train_s, "images_per_s": self.steps * args.batch_size / train_s if train_s else 0.0,
                "elapsed_train_s": self.train_s, "loss": float(logs.get("loss", self.loss)),
                "knn_accuracy": None, "knn_s": 0.0,
            }
            if last or (args.knn_every and number % args.knn_every == 0):
                start = time.perf_counter()
                record["knn_accuracy"] = evaluate(self.model.encoder)
                record["knn_s"] = time.perf_counter() - start
            self.epochs.append(record)
            print(f"epoch {number}: {self.steps} steps in {train_s:.1f} s, loss {record['loss']:.4f}"
                  + (f", kNN {record['knn_accuracy']:.4f} ({record['knn_s']:.1f} s)"
                     if record["knn_accuracy"] is not None else ""), flush=True)

    return TrainingClock()


def main(argv=None):
    args = parse_args(argv)
    # Keras fixes its backend at import: set it before anything imports keras.
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO_ROOT)  # runs from a checkout without `pip install`
    started = time.perf_counter()

    from keras_simclr.models import ENCODERS

    if args.model not in ENCODERS:
        raise SystemExit(f"Unknown --model; known: {', '.join(sorted(ENCODERS))}. Received: {args.model!r}")

    train_jpegs, train_labels = read_split(args.data, "train", args.train_examples)
    test_jpegs, test_labels = read_split(args.data, "test", args.eval_examples)
    decode = throughput.decode_tf if args.backend == "tensorflow" else throughput.decode_pillow
    start = time.perf_counter()
    train_images = decode(train_jpegs, None)
    test_images = decode(test_jpegs, None)
    decode_s = time.perf_counter() - start
    del train_jpegs, test_jpegs

    from keras_simclr.evaluation import extract_features
    from keras_simclr.evaluation import knn_accuracy

    def evaluate(encoder):
        bank = extract_features(encoder, train_images, batch_size=512)
        queries = extract_features(encoder, test_images, batch_size=512)
        return knn_accuracy(bank, train_labels, queries, test_labels, 10,
                            k=min(args.knn_k, len(bank)), temperature=args.knn_temperature)

    steps_per_epoch = len(train_images) // args.batch_size
    model, settings = build_model(args, steps_per_epoch)
    if args.backend == "tensorflow":
        from keras_simclr import data

        feed = data.pretraining_dataset(data.load_arrays(train_images), args.batch_size, seed=args.seed)
        feed = feed.map(lambda x, y: x)  # the labels are not used
    else:
        feed = throughput.numpy_batches(train_images, args.batch_size, seed=args.seed)
    max_epochs = args.epochs or 10**6  # --seconds alone: until the time is up
    clock = make_clock(args, evaluate, max_epochs)
    fit_start = time.perf_counter()
    model.fit(feed, epochs=max_epochs, steps_per_epoch=steps_per_epoch, verbose=0, shuffle=False,
              callbacks=[clock])
    fit_s = time.perf_counter() - fit_start

    result = {
        "command": shlex.join(["python"] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": throughput.environment(),
        "implementation": "keras_simclr",
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("output", "data")},
            "width_multiplier": args.width_multiplier or ENCODERS[args.model][1],
            "image_size": 32,
            "augmentation": f"keras_simclr.augment.SimCLRAugmentation(preset={settings['preset']!r}) "
                            "inside the compiled step",
            "jit_compile": bool(model.jit_compile),
            **settings,
        },
        "decode_s": decode_s,
        **summarize(clock.epochs, args, steps_per_epoch, len(train_images), len(test_images)),
        "compile_s": clock.first_step_s,
        "fit_s": fit_s,
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb": throughput.peak_rss_mb(),
        "accelerator_peak_mb": throughput.accelerator_peak_mb(),
    }
    print_report(result, f"keras_simclr {args.model} (width {result['config']['width_multiplier']}) batch "
                         f"{args.batch_size}, {args.backend} {args.precision}, {len(train_images)} training "
                         f"images, kNN on {len(test_images)} test images")
    throughput.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
