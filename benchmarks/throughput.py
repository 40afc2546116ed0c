"""End-to-end SimCLR pretraining throughput, with the input pipeline and without.

Trains a `ContrastiveModel` (SimCLR augmentation inside the compiled step,
LARS, NT-Xent) with `model.fit` in one process and measures, side by side:

- step-only: `fit` on the same ready uint8 batch every step (the batch is
  already decoded and in host memory; on TensorFlow a
  `tf.data.Dataset.from_tensors(batch).repeat()`, on JAX a Python generator
  yielding the same NumPy array). Augmentation, forward, loss, backward and
  the LARS update all run; the host-to-device copy of the uint8 batch too.
- end-to-end: the real CIFAR-10 JPEGs decoded once into a uint8 array
  (TensorFlow: a parallel `tf.data` map; JAX: Pillow in a thread pool,
  `keras_simclr.data.decode_images`; with `--source_size`, upscaled once to
  that side), then shuffled, batched and prefetched every epoch (TensorFlow:
  `keras_simclr.data.load_arrays` + `pretraining_dataset`; JAX:
  `keras_simclr.data.ShuffledBatches`, a PyDataset whose batches Keras
  gathers ahead in threads), and the same model steps.

It reports images/s of both, their ratio (end-to-end / step-only; near 1:
the input pipeline keeps up), the one-off decode time, the first step's time
(compilation), peak host RSS (and peak accelerator memory where the backend
reports it), and writes everything with the command line, machine and
versions to `--output` as JSON. The first `--warmup_steps` steps of each mode
are left out of the timing; every step is synchronized (the loss is read).

Examples (from the repository root):

    # ResNet-18 (CIFAR stem) at 32 px, batch 256, JAX, bfloat16
    python benchmarks/throughput.py --backend jax --precision mixed_bfloat16 \\
        --model resnet18_cifar --image_size 32 --batch_size 256 \\
        --output resnet18_cifar_jax_bf16.json

    # ResNet-50 at 224 px, crops from CIFAR images upscaled once to 256 px
    python benchmarks/throughput.py --backend jax --precision mixed_bfloat16 \\
        --model resnet50 --image_size 224 --source_size 256 --batch_size 256 \\
        --output resnet50_224_jax_bf16.json

    # the CI smoke test: a narrow network, 16 images a batch, 2 timed steps
    python benchmarks/throughput.py --backend tensorflow --tiny --output /tmp/t.json
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shlex
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(
    os.environ.get("KERAS_SIMCLR_DATA", os.path.join(REPO_ROOT, "..", "shared", "data")),
    "cifar10_jpeg.npz",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument("--model", default="resnet18_cifar", help="a keras_simclr.models.ENCODERS name")
    parser.add_argument("--width_multiplier", type=float, default=None, help="override the model's width")
    parser.add_argument("--image_size", type=int, default=32, help="side of the augmented views")
    parser.add_argument("--source_size", type=int, default=None,
                        help="upscale the decoded 32 px images once to this side (e.g. 256 for 224 crops)")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    parser.add_argument("--warmup_steps", type=int, default=2,
                        help="untimed steps before them (the first one compiles), at least 1")
    parser.add_argument("--num_images", type=int, default=10_000,
                        help="training JPEGs decoded for the end-to-end pipeline")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared cifar10_jpeg.npz")
    parser.add_argument("--tiny", action="store_true",
                        help="CI mode: width 0.125, batch 16, 2 steps, 64 images")
    parser.add_argument("--output", default=None, help="JSON file to write")
    return check_throughput_args(parser, parser.parse_args(argv))


def check_throughput_args(parser, args):
    """Applies `--tiny` and checks the step and batch counts (also lightly_reference.py's)."""
    if args.tiny:
        args.width_multiplier, args.batch_size, args.steps, args.num_images = 0.125, 16, 2, 64
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error(f"--warmup_steps and --steps must be >= 1. Received: "
                     f"warmup_steps={args.warmup_steps}, steps={args.steps}")
    if args.batch_size < 2 or args.num_images < args.batch_size:
        parser.error(f"Need 2 <= batch_size <= num_images. Received: "
                     f"batch_size={args.batch_size}, num_images={args.num_images}")
    return args


def print_modes(result):
    """The step-only / end-to-end table (images/s, ms/step, first step) of a throughput result."""
    print(f"{'mode':<12}{'images/s':>12}{'ms/step':>10}{'first step s':>14}")
    for name in ("step_only", "end_to_end"):
        r = result[name]
        print(f"{name:<12}{r['images_per_s']:>12.1f}{r['ms_per_step']:>10.1f}{r['first_step_s']:>14.2f}")


def warn_if_not_finite(result):
    if not all(math.isfinite(result[n]["last_loss"]) for n in ("step_only", "end_to_end")):
        print("warning: the loss is not finite")


def write_output(result, path):
    """Writes `result` as JSON to `path` (its folder made first), if a path is given."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {path}")


def peak_rss_mb():
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def read_jpegs(path, count):
    """`count` training JPEGs (bytes) in a fixed shuffled order (the file is sorted by class)."""
    import numpy as np

    data = np.load(path)
    offsets, blob = data["train_offsets"], data["train_bytes"]
    chosen = np.random.default_rng(0).permutation(len(offsets) - 1)[:count]
    return [blob[offsets[i]:offsets[i + 1]].tobytes() for i in chosen]


def decode_pillow(jpegs, source_size):
    """Decodes (and upscales, bilinear) JPEGs with Pillow in a thread pool into one uint8 array."""
    from keras_simclr.data.numpy_images import decode_images

    return decode_images(jpegs, image_size=source_size)


def decode_tf(jpegs, source_size):
    """Decodes (and upscales, bilinear) JPEGs with a parallel tf.data map into one uint8 array."""
    import numpy as np
    import tensorflow as tf

    from keras_simclr.data.image_utils import resize_image

    def decode(jpeg):
        image = tf.io.decode_jpeg(jpeg, channels=3)
        return resize_image(image, (source_size, source_size)) if source_size else image

    dataset = tf.data.Dataset.from_tensor_slices(jpegs).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate([batch.numpy() for batch in dataset.batch(1024)])


def numpy_batches(images, batch_size, seed=0, prefetch=2):
    """Shuffled full batches forever (a new order each epoch), gathered `prefetch` ahead in threads."""
    from keras_simclr.data.numpy_images import ShuffledBatches

    return ShuffledBatches(images, None, batch_size, seed=seed, repeat=True,
                           workers=max(2, prefetch), max_queue_size=prefetch)


def same_batch_forever(batch):
    while True:
        yield (batch,)


def build_model(args):
    import keras

    import keras_simclr as ks

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(args.precision)
    cifar = args.image_size <= 64
    model = ks.models.ContrastiveModel(
        encoder=ks.models.create_encoder(args.model, args.image_size, width_multiplier=args.width_multiplier),
        projection_head=ks.models.ProjectionHead(num_layers=2, output_dim=128),
        augmenter=ks.augment.SimCLRAugmentation(args.image_size, preset="cifar" if cifar else "imagenet", seed=0),
        temperature=0.5 if cifar else 0.1,
    )
    model.compile(optimizer=ks.optimizers.LARS(0.3 * args.batch_size / 256, weight_decay=1e-6))
    return model


def timed_fit(model, data, args):
    """Runs `warmup_steps + steps` steps of `model.fit`; returns the timings."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.loss = float(logs["loss"])  # waits for the (asynchronously dispatched) step
            self.times.append(time.perf_counter())

    timer = StepTimer()
    model.fit(data, steps_per_epoch=args.warmup_steps + args.steps, epochs=1, verbose=0, shuffle=False,
              callbacks=[timer])
    return step_timings(timer.times, timer.loss, args)


def step_timings(times, last_loss, args):
    """The timing fields of a run from its step boundaries `times` (start, then
    after each step): the first `warmup_steps` steps are left out of the rate."""
    step_times = [b - a for a, b in zip(times[args.warmup_steps:], times[args.warmup_steps + 1:])]
    elapsed = times[-1] - times[args.warmup_steps]
    return {
        "images_per_s": args.steps * args.batch_size / elapsed,
        "ms_per_step": 1000 * elapsed / args.steps,
        "step_times_ms": [round(1000 * t, 3) for t in step_times],
        "first_step_s": times[1] - times[0],
        "last_loss": last_loss,
        "peak_rss_mb": peak_rss_mb(),
    }


def accelerator_peak_mb():
    """Peak accelerator memory, where the backend reports it (None on CPU)."""
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            stats = jax.local_devices()[0].memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
        else:
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            peak = tf.config.experimental.get_memory_info(gpus[0].name)["peak"] if gpus else None
    except Exception:  # best effort: not every device reports memory
        peak = None
    return None if peak is None else peak / 2**20


def environment():
    import keras

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    if info["backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
    else:
        import tensorflow as tf

        from keras_simclr.onednn import onednn_enabled

        info["tensorflow"] = tf.__version__
        info["onednn"] = onednn_enabled()
        info["devices"] = [d.name for d in tf.config.list_logical_devices()]
    return info


def main(argv=None):
    args = parse_args(argv)
    # Keras fixes its backend at import: set it before anything imports keras.
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO_ROOT)  # runs from a checkout without `pip install`

    from keras_simclr.models import ENCODERS

    if args.model not in ENCODERS:
        raise SystemExit(f"Unknown --model; known: {', '.join(sorted(ENCODERS))}. Received: {args.model!r}")

    jpegs = read_jpegs(args.data, args.num_images)
    start = time.perf_counter()
    images = (decode_tf if args.backend == "tensorflow" else decode_pillow)(jpegs, args.source_size)
    decode_s = time.perf_counter() - start
    del jpegs

    model = build_model(args)
    batch = images[: args.batch_size]
    if args.backend == "tensorflow":
        import tensorflow as tf

        from keras_simclr import data

        step_data = tf.data.Dataset.from_tensors(batch).repeat()
        pipeline = data.pretraining_dataset(data.load_arrays(images), args.batch_size, seed=0, repeat=True)
        pipeline = pipeline.map(lambda x, y: x)  # the labels are not used
    else:
        step_data = same_batch_forever(batch)
        pipeline = numpy_batches(images, args.batch_size)

    step_only = timed_fit(model, step_data, args)
    end_to_end = timed_fit(model, pipeline, args)
    result = {
        "command": shlex.join(["python"] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": environment(),
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("output", "data")},
            "width_multiplier": args.width_multiplier or ENCODERS[args.model][1],
            "source_shape": list(images.shape[1:]),
            "jit_compile": bool(model.jit_compile),
            "step_only_feed": "model.fit on one uint8 batch repeated "
            + ("(tf.data.Dataset.from_tensors(batch).repeat())" if args.backend == "tensorflow"
               else "(a Python generator of the same NumPy array)"),
        },
        "decode_s": decode_s,
        "decode_images_per_s": len(images) / decode_s,
        "compile_s": step_only["first_step_s"],
        "step_only": step_only,
        "end_to_end": end_to_end,
        "ratio": end_to_end["images_per_s"] / step_only["images_per_s"],
        "peak_rss_mb": peak_rss_mb(),
        "accelerator_peak_mb": accelerator_peak_mb(),
    }

    print(f"\n{args.model} {args.image_size}px batch {args.batch_size}, {args.backend} {args.precision}, "
          f"{args.steps} timed steps after {args.warmup_steps}")
    print_modes(result)
    print(f"ratio end_to_end / step_only: {result['ratio']:.3f}; compile (first step): "
          f"{result['compile_s']:.2f} s; decode: {decode_s:.2f} s for {len(images)} images; "
          f"peak RSS: {result['peak_rss_mb']:.0f} MB")
    warn_if_not_finite(result)
    write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
