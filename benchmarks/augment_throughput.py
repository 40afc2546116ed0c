"""Throughput of the two-view SimCLR augmentation alone: ours against keras-cv 0.9 and torchvision.

Decodes the CIFAR-10 JPEGs once (upscaled for the imagenet preset) and times only the making of
two float32 views per image, for each library (`augment_recipes`) in each of its modes
(`augment_modes`), then reports images/s and the ratios ours / reference (README.md).

    python -m benchmarks.augment_throughput --output augment_throughput.json
    python -m benchmarks.augment_throughput --tiny --output /tmp/a.json   # the CI smoke test
"""

import argparse
import os
import time

from benchmarks import augment_modes
from benchmarks import augment_recipes
from benchmarks import common

REFERENCES = ("keras_cv", "torchvision")
OURS_TF_MODES = ("in_model_xla", "in_model_graph", "tf_data", "tf_data_xla")
KERAS_CV_MODES = ("in_model_xla", "in_model_graph", "tf_data")
TORCH_MODES = ("per_image", "dataloader")
MODES = OURS_TF_MODES + TORCH_MODES
# --tiny leaves out tf_data_xla: a second XLA compilation of the same graph.
TINY_MODES = ("in_model_xla", "in_model_graph", "tf_data") + TORCH_MODES
PRESETS = tuple(augment_recipes.RECIPES)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        default="tensorflow",
        help="Keras backend of ours (keras-cv needs tensorflow)",
    )
    parser.add_argument(
        "--presets", default="cifar,imagenet", help=f"comma-separated, from {', '.join(PRESETS)}"
    )
    parser.add_argument(
        "--references",
        default=",".join(REFERENCES),
        help=f"comma-separated, from {', '.join(REFERENCES)}; '' for ours only",
    )
    parser.add_argument("--cifar_size", type=int, default=32, help="view side of the cifar preset")
    parser.add_argument(
        "--imagenet_size", type=int, default=224, help="view side of the imagenet preset"
    )
    parser.add_argument(
        "--imagenet_source_size",
        type=int,
        default=256,
        help="the imagenet preset's sources: CIFAR images upscaled once to this side",
    )
    parser.add_argument(
        "--batch_size", type=int, default=256, help="source images a step (2x views)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method and mode")
    parser.add_argument(
        "--warmup_steps",
        type=int,
        default=2,
        help="untimed steps before them (the first one compiles), at least 1",
    )
    parser.add_argument(
        "--num_images", type=int, default=1024, help="decoded source images, cycled through"
    )
    parser.add_argument(
        "--modes",
        default=None,
        help=f"comma-separated modes to run, from {', '.join(MODES)}; default: all "
        f"(--tiny: all but tf_data_xla)",
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=os.cpu_count() or 1,
        help="DataLoader worker processes of the torchvision reference",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="CI mode: batch 8, 2 steps after 1, 16 images, imagenet preset at 48 "
        "from 56 px, at most 2 DataLoader workers, no tf_data_xla",
    )
    common.add_data_arguments(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch_size, args.steps, args.warmup_steps, args.num_images = 8, 2, 1, 16
        args.imagenet_size, args.imagenet_source_size = 48, 56
        args.num_workers = min(args.num_workers, 2)
    args.presets = names(parser, "--presets", args.presets, PRESETS)
    args.references = names(parser, "--references", args.references, REFERENCES, empty=True)
    if args.modes is None:
        args.modes = list(TINY_MODES if args.tiny else MODES)
    else:
        args.modes = names(parser, "--modes", args.modes, MODES)
    common.check_steps(parser, args)
    if args.batch_size < 1 or args.num_images < args.batch_size:
        parser.error(
            f"Need 1 <= batch_size <= num_images. Received: "
            f"batch_size={args.batch_size}, num_images={args.num_images}"
        )
    if (
        min(args.cifar_size, args.imagenet_size, args.imagenet_source_size, args.num_workers + 1)
        < 1
    ):
        parser.error(
            "Sizes must be positive and --num_workers >= 0. Received: "
            f"cifar_size={args.cifar_size}, imagenet_size={args.imagenet_size}, "
            f"imagenet_source_size={args.imagenet_source_size}, "
            f"num_workers={args.num_workers}"
        )
    return args


def names(parser, flag, text, known, empty=False):
    """The comma-separated names of `text`; `parser.error` on an unknown one (or none)."""
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not (chosen or empty):
        parser.error(f"{flag} must name some of {', '.join(known)}. Received: {unknown or chosen}")
    return chosen


def selected(modes, args):
    return [m for m in modes if m in args.modes]


# ---------------------------------------------------------------- methods


def ours_tensorflow(images, preset, image_size, args):
    results = {}
    for mode in selected(OURS_TF_MODES, args):
        layer = augment_recipes.ours_layer(preset, image_size)
        results[mode] = augment_modes.run_tf_mode(
            mode, augment_recipes.make_two_views(layer), images, args
        )
    return results


def ours_jax(images, preset, image_size, args):
    if "in_model_xla" not in args.modes:
        return {}
    layer = augment_recipes.ours_layer(preset, image_size)
    return {"in_model_xla": augment_modes.run_jax_in_model(layer, images, args)}


def keras_cv_tensorflow(images, preset, image_size, args):
    results = {}
    for mode in selected(KERAS_CV_MODES, args):
        augment = augment_recipes.keras_cv_augmenter(preset, image_size)

        def two_views(x, augment=augment):
            import tensorflow as tf

            return augment(tf.concat([x, x], axis=0))

        try:
            results[mode] = augment_modes.run_tf_mode(mode, two_views, images, args)
        except Exception as error:  # noqa: BLE001 (e.g. a layer XLA cannot compile)
            results[mode] = augment_modes.failed(error)
    return results


def torchvision_reference(images, preset, image_size, args):
    transform, description = augment_recipes.torchvision_transform(preset, image_size)
    return {"recipe": description, **augment_modes.run_torch_modes(transform, images, args)}


def run_reference(function, *args):
    try:
        return {"status": "measured", "modes": function(*args)}
    except augment_recipes.NotInstalled as error:
        return {"status": "not installed", "reason": str(error)}


# ---------------------------------------------------------------- report


def best(modes):
    """(mode, images/s) of the fastest measured mode, or (None, None)."""
    measured = {
        m: r["images_per_s"]
        for m, r in modes.items()
        if isinstance(r, dict) and r.get("status") == "measured"
    }
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
    same = {
        m: ours["modes"][m]["images_per_s"] / r["images_per_s"]
        for m, r in reference["modes"].items()
        if r.get("status") == "measured" and ours["modes"].get(m, {}).get("status") == "measured"
    }
    return {"best": ours_best / ref_best, "best_modes": [ours_mode, ref_mode], "same_mode": same}


def fit_jit_compile(backend):
    """Whether `model.fit` compiles with XLA here (`jit_compile="auto"`: not TF on CPU only)."""
    if backend == "jax":
        return True
    import tensorflow as tf

    return any(d.device_type != "CPU" for d in tf.config.list_physical_devices())


def print_preset(name, preset):
    print(
        f"\n{name} preset: {preset['image_size']} px views of {preset['source_size']} px images, "
        f"batch {preset['batch_size']} (x2 views), {preset['steps']} timed steps after "
        f"{preset['warmup_steps']}"
    )
    print(f"{'method':<13}{'mode':<16}{'images/s':>11}{'ms/step':>10}{'compile s':>11}")
    for method, report in preset["methods"].items():
        if report["status"] != "measured":
            print(f"{method:<13}{report['status']}: {report['reason']}")
            continue
        for mode, r in report["modes"].items():
            if r["status"] == "measured":
                print(
                    f"{method:<13}{mode:<16}{r['images_per_s']:>11.1f}{r['ms_per_step']:>10.1f}"
                    f"{r['compile_s']:>11.2f}"
                )
            else:
                print(f"{method:<13}{mode:<16}{r['status']}: {r['reason'][:110]}")
    for reference, ratio in preset["ratios"].items():
        if ratio is None:
            print(f"ours / {reference}: not measured")
            continue
        same = ", ".join(f"{m} {v:.2f}x" for m, v in ratio["same_mode"].items())
        print(
            f"ours / {reference}: {ratio['best']:.2f}x (best {ratio['best_modes'][0]} vs best "
            f"{ratio['best_modes'][1]})" + (f"; same mode: {same}" if same else "")
        )


def run_preset(name, jpegs, args):
    """Every selected method on one preset; the preset's report."""
    image_size = args.cifar_size if name == "cifar" else args.imagenet_size
    source_size = None if name == "cifar" else args.imagenet_source_size
    start = time.perf_counter()
    images = common.decode_pillow(jpegs, source_size)
    decode_s = time.perf_counter() - start
    methods = {}
    # torch first: its DataLoader forks workers, best before TensorFlow runs anything.
    if "torchvision" in args.references:
        report = run_reference(torchvision_reference, images, name, image_size, args)
        if report["status"] == "measured":
            report["recipe"] = report["modes"].pop("recipe")
        methods["torchvision"] = report
    ours = ours_jax if args.backend == "jax" else ours_tensorflow
    methods = {
        "ours": {"status": "measured", "modes": ours(images, name, image_size, args)},
        **methods,
    }
    if "keras_cv" in args.references:
        if args.backend != "tensorflow":
            methods["keras_cv"] = {"status": "skipped", "reason": "needs --backend tensorflow"}
        else:
            methods["keras_cv"] = run_reference(keras_cv_tensorflow, images, name, image_size, args)
    methods = {m: methods[m] for m in ["ours"] + [r for r in REFERENCES if r in methods]}
    return {
        "image_size": image_size,
        "source_size": int(images.shape[1]),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "decode_s": decode_s,
        "methods": methods,
        "ratios": {r: ratios(methods["ours"], methods[r]) for r in REFERENCES if r in methods},
    }


def main(argv=None):
    args = parse_args(argv)
    common.select_backend(args.backend)
    if "torchvision" in args.references:
        augment_recipes.import_torch_first()

    jpegs, _ = common.read_split(args.data, "train", args.num_images)
    results = {name: run_preset(name, jpegs, args) for name in args.presets}
    result = {
        **common.report_header(),
        "machine": common.keras_environment(),
        "config": {
            **common.arguments_record(args),
            "fit_jit_compile": fit_jit_compile(args.backend),
            "scale": augment_recipes.SCALE,
            "aspect_ratio": augment_recipes.ASPECT_RATIO,
            "recipes": augment_recipes.RECIPES,
            "images_per_s": "source images per second, two float32 views each",
        },
        "presets": results,
        "peak_rss_mb": common.peak_rss_mb(),
    }
    for name, preset in results.items():
        print_preset(name, preset)
    mode = "in_model_xla" if result["config"]["fit_jit_compile"] else "in_model_graph"
    print(
        f"model.fit on this machine runs the augmentation as {mode} (jit_compile='auto'); "
        f"peak RSS: {result['peak_rss_mb']:.0f} MB"
    )
    for name, preset in results.items():
        ratio = preset["ratios"].get("keras_cv")
        if ratio is not None:
            print(
                f"{name}: ours >= 3x keras-cv: {'yes' if ratio['best'] >= 3 else 'no'} "
                f"({ratio['best']:.2f}x)"
            )
    common.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
