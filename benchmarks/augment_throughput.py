"""Throughput of the two-view SimCLR augmentation alone, against keras-cv and torchvision.

Times only the augmentation that makes the two views of every image (no
model): random resized crop (area 0.08-1, aspect 3/4-4/3) with horizontal
flip, color jitter (strength s: brightness, contrast, saturation 0.8 s, hue
0.2 s) with p=0.8, grayscale with p=0.2, and, in the ImageNet preset only,
Gaussian blur with p=0.5 (sigma in [0.1, 2.0]). Two presets:

- `cifar`: 32 px views of the 32 px CIFAR-10 images, s=0.5, no blur;
- `imagenet`: 224 px views of the CIFAR-10 images upscaled once to 256 px,
  s=1.0, blur.

Methods, each in the modes it is used in:

- ours, `keras_simclr.augment.SimCLRAugmentation`, called as
  `ContrastiveModel` calls it (once on the batch concatenated with itself):
  *in_model_xla* / *in_model_graph*, on a ready uint8 batch inside a
  `tf.function` with and without XLA (`model.fit`'s `jit_compile="auto"`
  picks XLA on a GPU/TPU and the plain graph on a CPU-only machine; the
  report says which); *tf_data* / *tf_data_xla*, in a parallel `tf.data`
  map over uint8 batches, prefetched (the map function plain, or compiled
  with XLA as the layer's docstring suggests). With `--backend jax` only
  *in_model_xla* (`jax.jit` of the layer's `stateless_call`) runs.
- keras_cv (0.9): the same recipe from `keras_cv.layers`
  (`RandomCropAndResize`, `RandomFlip`, `RandomColorJitter` in
  `RandomApply(rate=0.8)`, `Grayscale` in `RandomApply(rate=0.2)`,
  `RandomGaussianBlur` in `RandomApply(rate=0.5)`), in the same modes on the
  TensorFlow backend.
- torchvision, as lightly uses it: `lightly.transforms.SimCLRTransform`
  (`input_size`, `cj_strength`, `gaussian_blur`, `normalize=None`; without
  lightly, the equivalent `torchvision.transforms` composition) on PIL
  images: *per_image*, a plain loop in this process, and *dataloader*, a
  `torch.utils.data.DataLoader` with `--num_workers` worker processes.

The real CIFAR-10 JPEGs are decoded (and upscaled) once with Pillow before
any timing. Every method makes two float32 views of `--batch_size` images a
step; the first `--warmup_steps` steps are left out of the timing and the
first one is reported apart as `compile_s` (tracing, XLA compilation, worker
start-up); every step is synchronized. images/s counts source images (two
views each). The report gives the ratios ours / keras-cv and ours /
torchvision (best mode against best mode, and mode for mode where both ran),
and writes everything with the command line, machine and versions to
`--output` as JSON. A reference that cannot be imported is reported as
"not installed: <reason>" and the rest still runs.

Examples (from the repository root):

    # both presets, all methods (keras-cv, torch, torchvision, lightly installed)
    python benchmarks/augment_throughput.py --output augment_throughput.json

    # ours only, on JAX (e.g. on a GPU)
    python benchmarks/augment_throughput.py --backend jax --references "" \\
        --output augment_throughput_jax.json

    # the CI smoke test: 8 images a batch, 2 timed steps, small sizes
    python benchmarks/augment_throughput.py --tiny --output /tmp/a.json
"""

import argparse
import datetime
import importlib.metadata
import os
import platform
import itertools
import shlex
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # runs from a checkout without `pip install`

from benchmarks.throughput import DEFAULT_DATA  # noqa: E402
from benchmarks.throughput import decode_pillow  # noqa: E402
from benchmarks.throughput import peak_rss_mb  # noqa: E402
from benchmarks.throughput import read_jpegs  # noqa: E402
from benchmarks.throughput import write_output  # noqa: E402

# Per preset: SimCLR color strength s and blur probability (None: no blur),
# as in keras_simclr.augment.simclr_augmentation.PRESETS.
RECIPES = {
    "cifar": {"strength": 0.5, "blur": None},
    "imagenet": {"strength": 1.0, "blur": 0.5},
}
SCALE = (0.08, 1.0)
ASPECT_RATIO = (3 / 4, 4 / 3)
SIGMA = (0.1, 2.0)
REFERENCES = ("keras_cv", "torchvision")
OURS_TF_MODES = ("in_model_xla", "in_model_graph", "tf_data", "tf_data_xla")
KERAS_CV_MODES = ("in_model_xla", "in_model_graph", "tf_data")
TORCH_MODES = ("per_image", "dataloader")
MODES = OURS_TF_MODES + TORCH_MODES
# --tiny leaves out tf_data_xla: a second XLA compilation of the same graph.
TINY_MODES = ("in_model_xla", "in_model_graph", "tf_data") + TORCH_MODES
# Distributions versions are reported for (read from metadata, not imported).
PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "numpy", "pillow", "keras-cv", "torch",
            "torchvision", "lightly")


class NotInstalled(Exception):
    """A reference library cannot be imported."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow",
                        help="Keras backend of ours (keras-cv needs tensorflow)")
    parser.add_argument("--presets", default="cifar,imagenet",
                        help=f"comma-separated, from {', '.join(RECIPES)}")
    parser.add_argument("--references", default=",".join(REFERENCES),
                        help=f"comma-separated, from {', '.join(REFERENCES)}; '' for ours only")
    parser.add_argument("--cifar_size", type=int, default=32, help="view side of the cifar preset")
    parser.add_argument("--imagenet_size", type=int, default=224, help="view side of the imagenet preset")
    parser.add_argument("--imagenet_source_size", type=int, default=256,
                        help="the imagenet preset's sources: CIFAR images upscaled once to this side")
    parser.add_argument("--batch_size", type=int, default=256, help="source images a step (2x views)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method and mode")
    parser.add_argument("--warmup_steps", type=int, default=2,
                        help="untimed steps before them (the first one compiles), at least 1")
    parser.add_argument("--num_images", type=int, default=1024,
                        help="decoded source images, cycled through")
    parser.add_argument("--modes", default=None,
                        help=f"comma-separated modes to run, from {', '.join(MODES)}; default: all "
                             f"(--tiny: all but tf_data_xla)")
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1,
                        help="DataLoader worker processes of the torchvision reference")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared cifar10_jpeg.npz")
    parser.add_argument("--tiny", action="store_true",
                        help="CI mode: batch 8, 2 steps after 1, 16 images, imagenet preset at 48 from 56 px, "
                             "at most 2 DataLoader workers, no tf_data_xla")
    parser.add_argument("--output", default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch_size, args.steps, args.warmup_steps, args.num_images = 8, 2, 1, 16
        args.imagenet_size, args.imagenet_source_size = 48, 56
        args.num_workers = min(args.num_workers, 2)
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    args.references = [r.strip() for r in args.references.split(",") if r.strip()]
    if args.modes is None:
        args.modes = list(TINY_MODES if args.tiny else MODES)
    else:
        args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = [m for m in args.modes if m not in MODES]
        if unknown or not args.modes:
            parser.error(f"--modes must name some of {', '.join(MODES)}. Received: {unknown or args.modes}")
    unknown = [p for p in args.presets if p not in RECIPES] or None
    if unknown or not args.presets:
        parser.error(f"--presets must name some of {', '.join(RECIPES)}. Received: {unknown or args.presets}")
    unknown = [r for r in args.references if r not in REFERENCES]
    if unknown:
        parser.error(f"--references must name some of {', '.join(REFERENCES)}. Received: {unknown}")
    if args.warmup_steps < 1 or args.steps < 1:
        parser.error(f"--warmup_steps and --steps must be >= 1. Received: "
                     f"warmup_steps={args.warmup_steps}, steps={args.steps}")
    if args.batch_size < 1 or args.num_images < args.batch_size:
        parser.error(f"Need 1 <= batch_size <= num_images. Received: "
                     f"batch_size={args.batch_size}, num_images={args.num_images}")
    if min(args.cifar_size, args.imagenet_size, args.imagenet_source_size, args.num_workers + 1) < 1:
        parser.error("Sizes must be positive and --num_workers >= 0. Received: "
                     f"cifar_size={args.cifar_size}, imagenet_size={args.imagenet_size}, "
                     f"imagenet_source_size={args.imagenet_source_size}, num_workers={args.num_workers}")
    return args


# ----------------------------------------------------------------------------
# Timing


def time_steps(step, count_steps, args):
    """Times `step()` (one synchronized step of `batch_size` images).

    Runs `warmup_steps` untimed steps (the first one's time is `compile_s`),
    then `steps` timed ones.
    """
    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    for _ in range(args.warmup_steps - 1):
        step()
    times = [time.perf_counter()]
    for _ in range(count_steps):
        step()
        times.append(time.perf_counter())
    elapsed = times[-1] - times[0]
    return {
        "status": "measured",
        "images_per_s": count_steps * args.batch_size / elapsed,
        "ms_per_step": 1000 * elapsed / count_steps,
        "step_times_ms": [round(1000 * (b - a), 3) for a, b in zip(times, times[1:])],
        "compile_s": compile_s,
    }


def time_iterator(make_iterator, args):
    """Times an iterator of ready batches; `compile_s` covers building it and its first batch."""
    state = {}

    def step():
        if "iterator" not in state:
            state["iterator"] = make_iterator()
        next(state["iterator"])

    return time_steps(step, args.steps, args)


def full_batches(images, batch_size):
    """The consecutive full batches of `images` (an array or a list), as a list."""
    return [images[s:s + batch_size] for s in range(0, len(images) - batch_size + 1, batch_size)]


def selected(modes, args):
    return [m for m in modes if m in args.modes]


def failed(error):
    return {"status": "failed", "reason": f"{type(error).__name__}: {error}".strip()[:2000]}


# ----------------------------------------------------------------------------
# Ours


def ours_layer(preset, image_size, seed=0):
    import keras_simclr as ks

    return ks.augment.SimCLRAugmentation(image_size, preset=preset, seed=seed)


def make_two_views(layer):
    """x (N, H, W, 3) -> the (2N, size, size, 3) float32 views, as `ContrastiveModel` makes them:

    one call of the augmenter on the batch concatenated with itself (every
    random choice is drawn per image, so the two copies get independent
    views); view a of every image first.
    """
    from keras import ops

    def two_views(images):
        return layer(ops.concatenate([images, images], axis=0), training=True)

    return two_views


def ours_tensorflow(images, preset, image_size, args):
    results = {}
    for mode in selected(OURS_TF_MODES, args):
        two_views = make_two_views(ours_layer(preset, image_size))
        results[mode] = run_tf_mode(mode, two_views, images, args)
    return results


def run_tf_mode(mode, two_views, images, args):
    """Times `two_views` (uint8 batch -> float32 views) in a TensorFlow mode."""
    import tensorflow as tf

    jit_compile = mode.endswith("_xla")
    function = tf.function(two_views, jit_compile=jit_compile)
    if mode.startswith("in_model"):
        # Ready batches, already tensors (on the accelerator where there is one).
        batches = itertools.cycle([tf.constant(b) for b in full_batches(images, args.batch_size)])

        def step():
            views = function(next(batches))
            views[0, 0, 0, 0].numpy()  # waits for the step

        return time_steps(step, args.steps, args)

    def make_iterator():
        dataset = (
            tf.data.Dataset.from_tensor_slices(images)
            .repeat()
            .batch(args.batch_size, drop_remainder=True)
            .map(function, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .prefetch(tf.data.AUTOTUNE)
        )
        return iter(dataset)

    return time_iterator(make_iterator, args)


def ours_jax(images, preset, image_size, args):
    import jax
    import jax.numpy as jnp

    if "in_model_xla" not in args.modes:
        return {}
    layer = ours_layer(preset, image_size)
    layer.build((2 * args.batch_size,) + images.shape[1:])

    @jax.jit
    def step_fn(non_trainable, batch):
        # `stateless_call` threads the seed generators' state, as Keras's JAX trainer does.
        return layer.stateless_call(
            [], non_trainable, jnp.concatenate([batch, batch], axis=0), training=True)

    state = {"non_trainable": [v.value for v in layer.non_trainable_variables]}
    batches = itertools.cycle([jnp.asarray(b) for b in full_batches(images, args.batch_size)])

    def step():
        views, state["non_trainable"] = step_fn(state["non_trainable"], next(batches))
        views.block_until_ready()

    return {"in_model_xla": time_steps(step, args.steps, args)}


# ----------------------------------------------------------------------------
# keras-cv 0.9


def keras_cv_augmenter(preset, image_size, seed=0):
    """The ours recipe from keras-cv 0.9 layers: float32 [0, 255] images -> float32 [0, 1] views.

    keras-cv's factors are converted to SimCLR's (strength s):

    - brightness: keras-cv's is additive only, a delta of up to
      `factor * 255` (SimCLR v1's), with factor 0.8 s; ours multiplies
      (SimCLR v2): the same cost, an affine map per image;
    - contrast: factor in [1 - 0.8 s, 1 + 0.8 s], as ours;
    - saturation: keras-cv's `f` scales the saturation by `f / (1 - f)`, so
      SimCLR's range [1 - 0.8 s, 1 + 0.8 s] is `f = m / (1 + m)` at its ends;
    - hue: keras-cv shifts by up to `factor * 0.5` turns (`_hue_factor`).

    keras-cv's `RandomColorJitter` applies the four in a fixed order (ours
    draws the order per image, which costs ours more); the blur kernel is
    odd, about 10% of the side.
    """
    try:
        import keras_cv
    except Exception as error:  # noqa: BLE001 (anything that stops the import)
        raise NotInstalled(f"{type(error).__name__}: {error}") from error
    import keras

    s = RECIPES[preset]["strength"]
    low, high = max(0.0, 1.0 - 0.8 * s), 1.0 + 0.8 * s
    layers = keras_cv.layers
    steps = [
        layers.RandomCropAndResize(
            target_size=(image_size, image_size), crop_area_factor=SCALE,
            aspect_ratio_factor=ASPECT_RATIO, seed=seed),
        layers.RandomFlip("horizontal", seed=seed + 1),
        layers.RandomApply(
            layers.RandomColorJitter(
                value_range=(0, 255),
                brightness_factor=0.8 * s,
                contrast_factor=0.8 * s,
                saturation_factor=(low / (1 + low), high / (1 + high)),
                hue_factor=_hue_factor(0.2 * s),
                seed=seed + 2),
            rate=0.8, seed=seed + 3),
        layers.RandomApply(layers.Grayscale(output_channels=3), rate=0.2, seed=seed + 4),
    ]
    if RECIPES[preset]["blur"]:
        kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)  # odd, about 10% of the side
        steps.append(layers.RandomApply(
            layers.RandomGaussianBlur(kernel_size=kernel, factor=SIGMA, seed=seed + 5),
            rate=RECIPES[preset]["blur"], seed=seed + 6))
    pipeline = keras.Sequential(steps)

    def augment(images):
        import tensorflow as tf

        return pipeline(tf.cast(images, "float32"), training=True) / 255.0

    return augment


def _hue_factor(max_shift):
    """keras-cv's RandomHue factor for a hue shift of up to `max_shift` turns."""
    return 2.0 * max_shift


def keras_cv_tensorflow(images, preset, image_size, args):
    results = {}
    for mode in selected(KERAS_CV_MODES, args):
        augment = keras_cv_augmenter(preset, image_size)

        def two_views(x, augment=augment):
            import tensorflow as tf

            return augment(tf.concat([x, x], axis=0))

        try:
            results[mode] = run_tf_mode(mode, two_views, images, args)
        except Exception as error:  # noqa: BLE001 (e.g. a layer XLA cannot compile)
            results[mode] = failed(error)
    return results


# ----------------------------------------------------------------------------
# torchvision, as lightly uses it


def torchvision_transform(preset, image_size):
    """SimCLR's two-view transform as lightly builds it: PIL image -> [view_a, view_b].

    Returns `(transform, description)`. Views are float32 (3, size, size) in
    [0, 1] (no normalization, as ours).
    """
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except Exception as error:  # noqa: BLE001
        raise NotInstalled(f"{type(error).__name__}: {error}") from error
    s, blur = RECIPES[preset]["strength"], RECIPES[preset]["blur"] or 0.0
    try:
        from lightly.transforms import SimCLRTransform
    except Exception as error:  # noqa: BLE001: fall back to the same torchvision composition
        lightly_error = f"{type(error).__name__}: {error}"
    else:
        transform = SimCLRTransform(
            input_size=image_size, cj_prob=0.8, cj_strength=s, min_scale=SCALE[0],
            random_gray_scale=0.2, gaussian_blur=blur, sigmas=SIGMA, vf_prob=0.0, hf_prob=0.5,
            rr_prob=0.0, normalize=None)
        return transform, "lightly.transforms.SimCLRTransform(normalize=None)"

    import torchvision.transforms as T

    view = T.Compose([
        T.RandomResizedCrop(image_size, scale=SCALE, ratio=ASPECT_RATIO),
        T.RandomHorizontalFlip(0.5),
        T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
        T.RandomGrayscale(0.2),
        T.RandomApply([T.GaussianBlur(max(3, int(0.1 * image_size) // 2 * 2 + 1), SIGMA)], p=blur),
        T.ToTensor(),
    ])
    return (lambda image: [view(image), view(image)],
            f"torchvision.transforms.Compose equivalent to lightly's SimCLRTransform "
            f"(lightly not importable: {lightly_error})")


class ViewsDataset:
    """A map-style dataset of the two views of PIL images (for `torch.utils.data.DataLoader`)."""

    def __init__(self, images, transform, length):
        self.images, self.transform, self.length = images, transform, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        view_a, view_b = self.transform(self.images[index % len(self.images)])
        return view_a, view_b


def torchvision_reference(images, preset, image_size, args):
    transform, description = torchvision_transform(preset, image_size)
    import torch
    from PIL import Image

    pil_images = [Image.fromarray(image) for image in images]  # lightly's datasets yield PIL images
    results = {"recipe": description}
    batches = itertools.cycle(full_batches(pil_images, args.batch_size))

    def step():
        for image in next(batches):
            views = transform(image)
        assert views[0].dtype == torch.float32

    if "per_image" in args.modes:
        results["per_image"] = time_steps(step, args.steps, args)
    if "dataloader" not in args.modes:
        return results

    def make_iterator():
        length = (args.warmup_steps + args.steps) * args.batch_size
        loader = torch.utils.data.DataLoader(
            ViewsDataset(pil_images, transform, length), batch_size=args.batch_size,
            num_workers=args.num_workers, shuffle=False, drop_last=True)
        return iter(loader)

    try:
        results["dataloader"] = time_iterator(make_iterator, args)
    except Exception as error:  # noqa: BLE001 (e.g. no shared memory for the workers)
        results["dataloader"] = failed(error)
    results["dataloader"]["num_workers"] = args.num_workers
    return results


# ----------------------------------------------------------------------------
# Report


def best(modes):
    """(mode, images/s) of the fastest measured mode, or (None, None)."""
    measured = {m: r["images_per_s"] for m, r in modes.items()
                if isinstance(r, dict) and r.get("status") == "measured"}
    if not measured:
        return None, None
    mode = max(measured, key=measured.get)
    return mode, measured[mode]


def ratios(ours, reference):
    """ours / reference, best mode against best mode and mode for mode."""
    if reference.get("status") != "measured":
        return None
    (ours_mode, ours_best), (ref_mode, ref_best) = best(ours["modes"]), best(reference["modes"])
    if ours_best is None or ref_best is None:
        return None
    same = {m: ours["modes"][m]["images_per_s"] / r["images_per_s"]
            for m, r in reference["modes"].items()
            if r.get("status") == "measured" and ours["modes"].get(m, {}).get("status") == "measured"}
    return {"best": ours_best / ref_best, "best_modes": [ours_mode, ref_mode], "same_mode": same}


def versions():
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def environment(backend):
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "backend": backend,
        "versions": versions(),
    }
    if backend == "jax":
        import jax

        info["devices"] = [str(d) for d in jax.devices()]
    else:
        import tensorflow as tf

        info["devices"] = [d.name for d in tf.config.list_logical_devices()]
    return info


def fit_jit_compile(backend):
    """What `model.fit` would use: Keras's `jit_compile="auto"` is off for TF on CPU-only machines."""
    if backend == "jax":
        return True
    import tensorflow as tf

    return any(d.device_type != "CPU" for d in tf.config.list_physical_devices())


def print_preset(name, preset):
    print(f"\n{name} preset: {preset['image_size']} px views of {preset['source_size']} px images, "
          f"batch {preset['batch_size']} (x2 views), {preset['steps']} timed steps after {preset['warmup_steps']}")
    print(f"{'method':<13}{'mode':<16}{'images/s':>11}{'ms/step':>10}{'compile s':>11}")
    for method, report in preset["methods"].items():
        if report["status"] != "measured":
            print(f"{method:<13}{report['status']}: {report['reason']}")
            continue
        for mode, r in report["modes"].items():
            if r["status"] == "measured":
                print(f"{method:<13}{mode:<16}{r['images_per_s']:>11.1f}{r['ms_per_step']:>10.1f}"
                      f"{r['compile_s']:>11.2f}")
            else:
                print(f"{method:<13}{mode:<16}{r['status']}: {r['reason'][:110]}")
    for reference, ratio in preset["ratios"].items():
        if ratio is None:
            print(f"ours / {reference}: not measured")
            continue
        same = ", ".join(f"{m} {v:.2f}x" for m, v in ratio["same_mode"].items())
        print(f"ours / {reference}: {ratio['best']:.2f}x (best {ratio['best_modes'][0]} vs best "
              f"{ratio['best_modes'][1]})" + (f"; same mode: {same}" if same else ""))


def import_torch_first():
    """Imports torch, torchvision and lightly before anything imports TensorFlow.

    With TensorFlow loaded first, importing `torchvision.ops` (which lightly
    does) segfaults in triton's import (seen with torch 2.14, torchvision
    0.29, TensorFlow 2.21); in the other order both work. The decode step
    already imports keras (and so TensorFlow). Import errors are left for
    `torchvision_transform` to report.
    """
    for name in ("torch", "torchvision", "torchvision.ops", "lightly.transforms"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S110: reported by torchvision_transform
            pass


def run_reference(function, *args):
    try:
        return {"status": "measured", "modes": function(*args)}
    except NotInstalled as error:
        return {"status": "not installed", "reason": str(error)}


def main(argv=None):
    args = parse_args(argv)
    # Keras fixes its backend at import: set it before anything imports keras.
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    if "torchvision" in args.references:
        import_torch_first()
    # Then keras_simclr, before TensorFlow loads: it turns on TensorFlow's
    # oneDNN kernels as it does for users (keras_simclr/onednn.py), for our
    # layers and keras-cv's alike.
    import keras_simclr  # noqa: F401

    jpegs = read_jpegs(args.data, args.num_images)
    results = {}
    for name in args.presets:
        image_size = args.cifar_size if name == "cifar" else args.imagenet_size
        source_size = None if name == "cifar" else args.imagenet_source_size
        start = time.perf_counter()
        images = decode_pillow(jpegs, source_size)
        decode_s = time.perf_counter() - start
        methods = {}
        # torch first: its DataLoader forks workers, best before TensorFlow runs anything.
        if "torchvision" in args.references:
            report = run_reference(torchvision_reference, images, name, image_size, args)
            if report["status"] == "measured":
                report["recipe"] = report["modes"].pop("recipe")
            methods["torchvision"] = report
        ours = ours_jax if args.backend == "jax" else ours_tensorflow
        methods = {"ours": {"status": "measured", "modes": ours(images, name, image_size, args)}, **methods}
        if "keras_cv" in args.references:
            if args.backend != "tensorflow":
                methods["keras_cv"] = {"status": "skipped", "reason": "needs --backend tensorflow"}
            else:
                methods["keras_cv"] = run_reference(keras_cv_tensorflow, images, name, image_size, args)
        order = ["ours"] + [r for r in REFERENCES if r in methods]
        methods = {m: methods[m] for m in order}
        results[name] = {
            "image_size": image_size,
            "source_size": int(images.shape[1]),
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup_steps": args.warmup_steps,
            "decode_s": decode_s,
            "methods": methods,
            "ratios": {r: ratios(methods["ours"], methods[r]) for r in REFERENCES if r in methods},
        }

    result = {
        "command": shlex.join(["python"] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": environment(args.backend),
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("output", "data")},
            "fit_jit_compile": fit_jit_compile(args.backend),
            "scale": SCALE,
            "aspect_ratio": ASPECT_RATIO,
            "recipes": RECIPES,
            "images_per_s": "source images per second, two float32 views each",
        },
        "presets": results,
        "peak_rss_mb": peak_rss_mb(),
    }
    for name, preset in results.items():
        print_preset(name, preset)
    mode = "in_model_xla" if result["config"]["fit_jit_compile"] else "in_model_graph"
    print(f"model.fit on this machine runs the augmentation as {mode} (jit_compile='auto'); "
          f"peak RSS: {result['peak_rss_mb']:.0f} MB")
    for name, preset in results.items():
        ratio = preset["ratios"].get("keras_cv")
        if ratio is not None:
            print(f"{name}: ours >= 3x keras-cv: {'yes' if ratio['best'] >= 3 else 'no'} ({ratio['best']:.2f}x)")
    write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
