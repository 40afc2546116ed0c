"""What the benchmarks share: the CIFAR-10 JPEGs, decoding, timing, memory, machine and output.

Only the standard library is imported here; NumPy, Pillow, Keras and TensorFlow are imported
by the functions that need them, so the torch-only lightly reference never loads Keras.
"""

import datetime
import importlib.metadata
import json
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
CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000
# Distributions whose versions every report lists (read from metadata, not imported).
PACKAGES = (
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "numpy",
    "pillow",
    "keras-cv",
    "torch",
    "torchvision",
    "lightly",
)


# ---------------------------------------------------------------- set-up and arguments


def select_backend(backend):
    """Sets Keras's backend and turns TensorFlow's oneDNN CPU kernels on; call before Keras loads.

    oneDNN on (`keras_simclr.enable_onednn()`, as the CLI does) is how `BENCHMARKS.md` was
    measured: TensorFlow leaves it off on AVX2-only CPUs. `TF_ENABLE_ONEDNN_OPTS=0` keeps Eigen.
    """
    from keras_simclr import enable_onednn  # imports neither Keras nor TensorFlow

    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    enable_onednn()


def add_data_arguments(parser):
    """`--data` (the shared cifar10_jpeg.npz) and `--output` (the JSON report)."""
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared cifar10_jpeg.npz")
    parser.add_argument("--output", default=None, help="JSON file to write")


def check_steps(parser, args):
    """`parser.error` unless `--warmup_steps` and `--steps` are both at least 1."""
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error(
            f"--warmup_steps and --steps must be >= 1. Received: "
            f"warmup_steps={args.warmup_steps}, steps={args.steps}"
        )


def arguments_record(args):
    """The parsed arguments for a report, less the paths (`--data`, `--output`)."""
    return {k: v for k, v in vars(args).items() if k not in ("output", "data")}


# ---------------------------------------------------------------- data


def read_split(path, split, count):
    """`count` JPEGs (bytes) of `split` ("train" or "test") and their labels, in a fixed order.

    The order is a seed-0 permutation of the split (the file is sorted by class), so a small
    subset holds every class and every benchmark reads the same images.

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
    return [blob[offsets[i] : offsets[i + 1]].tobytes() for i in chosen], labels


def decode_pillow(jpegs, source_size=None):
    """JPEGs -> one uint8 array with keras_simclr's NumPy-path decoder (Pillow, threads).

    `source_size`: upscale once to this side. The decoder is imported from its implementation
    module: `keras_simclr.data` exports only the dataset loaders, and this times the decoding.
    """
    from keras_simclr.data.image_decoding import decode_images

    return decode_images(jpegs, image_size=source_size)


def decode_tf(jpegs, source_size=None):
    """JPEGs -> one uint8 array with a parallel `tf.data` map (and keras_simclr's resize)."""
    import numpy as np
    import tensorflow as tf

    from keras_simclr.data.resizing import resize_image

    def decode(jpeg):
        image = tf.io.decode_jpeg(jpeg, channels=3)
        return resize_image(image, (source_size, source_size)) if source_size else image

    dataset = tf.data.Dataset.from_tensor_slices(jpegs).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE
    )
    return np.concatenate([batch.numpy() for batch in dataset.batch(1024)])


def decode_without_keras(jpegs):
    """JPEGs -> one uint8 array with Pillow in a thread pool, importing neither Keras nor TF.

    The same decoder as `decode_pillow` at the images' own size, for the torch-only process.
    """
    import io
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    def load(jpeg):
        return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))

    first = load(jpegs[0])
    images = np.empty((len(jpegs),) + first.shape, np.uint8)

    def store(i):
        images[i] = load(jpegs[i])

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(store, range(len(jpegs))))
    return images


def full_batches(images, batch_size):
    """The consecutive full batches of `images` (an array or a list), as a list."""
    return [images[s : s + batch_size] for s in range(0, len(images) - batch_size + 1, batch_size)]


# ---------------------------------------------------------------- timing


def run_steps(step, count):
    """Calls `step()` `count` times; returns the `count + 1` step boundaries (perf_counter).

    `step` must wait for its work (read a value), so a boundary is the end of the step.
    """
    times = [time.perf_counter()]
    for _ in range(count):
        step()
        times.append(time.perf_counter())
    return times


def step_rates(times, warmup_steps, batch_size):
    """Rates from step boundaries, leaving the first `warmup_steps` steps out.

    Returns:
        `images_per_s`, `ms_per_step`, `step_times_ms` (the timed steps) and `first_step_s`
        (the first step: tracing and compilation).
    """
    timed = times[warmup_steps:]
    steps, elapsed = len(timed) - 1, timed[-1] - timed[0]
    return {
        "images_per_s": steps * batch_size / elapsed,
        "ms_per_step": 1000 * elapsed / steps,
        "step_times_ms": [round(1000 * (b - a), 3) for a, b in zip(timed, timed[1:])],
        "first_step_s": times[1] - times[0],
    }


# ---------------------------------------------------------------- memory and machine


def peak_rss_mb():
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def accelerator_peak_mb():
    """Peak accelerator memory of Keras's backend where it reports it (None on CPU)."""
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
    except Exception:  # noqa: BLE001 (best effort: not every device reports memory)
        peak = None
    return None if peak is None else peak / 2**20


def versions():
    """`{distribution: version or None}` for `PACKAGES`."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine():
    """Platform, processor, CPU count, Python and package versions (nothing imported)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions(),
    }


def keras_environment():
    """`machine()` plus Keras's backend, its version and devices (and `TF_ENABLE_ONEDNN_OPTS`)."""
    import keras

    info = {**machine(), "keras": keras.__version__, "backend": keras.backend.backend()}
    if info["backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
    else:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        info["devices"] = [d.name for d in tf.config.list_logical_devices()]
    return info


# ---------------------------------------------------------------- output


def command_line():
    """This process's command, as `python -m benchmarks.<name> ...` when run that way."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return shlex.join(["python", "-m", spec.name] + sys.argv[1:])
    return shlex.join(["python"] + sys.argv)


def report_header():
    """`command` and `date` (UTC), the first fields of every report."""
    return {
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_output(result, path):
    """Writes `result` as JSON to `path` (its folder made first), if a path is given."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {path}")
