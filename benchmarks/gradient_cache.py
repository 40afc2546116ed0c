"""Peak memory and images/s of a SimCLR training step with gradient caching and without.

For every model, batch size and `micro_batch_size` (none: the plain step), one child process
builds the `ContrastiveModel`, reads one batch of CIFAR-10 JPEGs and runs `model.fit` on it:
a warm-up step (compilation, untimed), then `--steps` timed steps, SimCLR augmentation inside
the step. The parent watches each child's resident memory and kills one that grows past
`--memory_limit_gb` (recorded as over the cap), so every peak is one configuration's alone
and the machine never swaps. It reports images/s, seconds/step, the peak RSS, the RSS just
before the first step (the model and data built) and the step's growth over it, and per model
and batch the ratios cached / plain of time per image and of memory (README.md).

    python -m benchmarks.gradient_cache --output gradient_cache.json
    python -m benchmarks.gradient_cache --backend jax --models resnet18_cifar --batch_sizes 1024
    python -m benchmarks.gradient_cache --tiny --output /tmp/gc.json   # the CI smoke test
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks import common

# The models side by side: a keras_simclr.models.ENCODERS name -> its views' side and width.
MODELS = {
    "resnet18_cifar": {"image_size": 32, "width_multiplier": 0.25},
    "resnet50": {"image_size": 224, "width_multiplier": 0.125},
}
TINY_MODEL = {"image_size": 16, "width_multiplier": 0.125}
# The acceptance figure: at batch 1024 with micro_batch_size=64, the cached step's
# peak RSS at most 1/4 of the plain step's and its time per image at most 1.5x.
ACCEPTANCE_BATCH = 1024
ACCEPTANCE_MICRO_BATCH = 64
ACCEPTANCE_MEMORY_RATIO = 0.25
ACCEPTANCE_TIME_RATIO = 1.5
POLL_S = 0.02  # how often the parent reads a child's RSS


def comma_list(kind):
    """An argparse type: a comma-separated list of `kind`."""

    def parse(text):
        return [kind(item) for item in text.split(",") if item.strip()]

    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument(
        "--models",
        type=comma_list(str),
        default=list(MODELS),
        help=f"comma-separated, of {', '.join(MODELS)}",
    )
    parser.add_argument(
        "--batch_sizes",
        type=comma_list(int),
        default=None,
        help="comma-separated images per step; default 256,1024,4096 (--tiny: 16,32)",
    )
    parser.add_argument(
        "--micro_batch_size", type=int, default=64, help="images per chunk of the cached step"
    )
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument(
        "--warmup_steps", type=int, default=1, help="untimed steps first (compilation), >= 1"
    )
    parser.add_argument(
        "--memory_limit_gb",
        type=float,
        default=10.0,
        help="a child whose resident memory passes this is killed and reported over the cap",
    )
    parser.add_argument(
        "--timeout_s", type=float, default=900.0, help="a child running longer is killed"
    )
    parser.add_argument(
        "--skip",
        type=comma_list(str),
        default=["resnet50:4096"],
        help="comma-separated model:batch_size pairs reported as not measured; default "
        "resnet50:4096 (its float32 views alone take 4.9 GB, and on 2 CPU cores its 3 steps "
        "would take 20 minutes or more); --skip '' runs everything",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="CI mode: resnet18_cifar at 16 px, width 0.125, batches 16 and 32, micro 8, 1 step",
    )
    parser.add_argument("--configuration", default=None, help=argparse.SUPPRESS)  # a child's
    common.add_data_arguments(parser)
    args = parser.parse_args(argv)
    if args.configuration is not None:
        return args
    if args.tiny:
        args.models, args.micro_batch_size = ["resnet18_cifar"], 8
        args.batch_sizes = args.batch_sizes or [16, 32]
        args.steps, args.warmup_steps = 1, 1
    args.batch_sizes = args.batch_sizes or [256, 1024, 4096]
    common.check_steps(parser, args)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        parser.error(f"--models must be some of {', '.join(MODELS)}. Received: {args.models}")
    micro = args.micro_batch_size
    bad = [b for b in args.batch_sizes if b < 2 or micro < 1 or b % micro]
    if bad or not args.batch_sizes:
        parser.error(
            "Every batch size must be a multiple of --micro_batch_size (and >= 2). Received: "
            f"batch_sizes={args.batch_sizes}, micro_batch_size={micro}"
        )
    bad = [s for s in args.skip if len(s.split(":")) != 2 or not s.split(":")[1].isdigit()]
    if bad:
        parser.error(f"--skip takes model:batch_size pairs. Received: skip={args.skip}")
    if not args.memory_limit_gb > 0 or not args.timeout_s > 0:
        parser.error(
            "--memory_limit_gb and --timeout_s must be positive. Received: "
            f"memory_limit_gb={args.memory_limit_gb}, timeout_s={args.timeout_s}"
        )
    return args


def configurations(args):
    """One dict per child: every model x batch size, plain then cached."""
    found = []
    for name in args.models:
        model = TINY_MODEL if args.tiny else MODELS[name]
        for batch_size in args.batch_sizes:
            for micro_batch_size in (None, args.micro_batch_size):
                found.append(
                    {
                        "skipped": f"{name}:{batch_size}" in args.skip,
                        "model": name,
                        **model,
                        "batch_size": batch_size,
                        "micro_batch_size": micro_batch_size,
                        "backend": args.backend,
                        "steps": args.steps,
                        "warmup_steps": args.warmup_steps,
                        "data": args.data,
                    }
                )
    return found


# ---------------------------------------------------------------- one configuration (child)


def resident_mb(pid="self", field="VmRSS"):
    """`field` of /proc/<pid>/status (VmRSS: now, VmHWM: peak) in MB; None where unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return None


def build_model(config):
    """SimCLR as `throughput` builds it, with `micro_batch_size`.

    Up to 64 px: the cifar preset and T=0.5, else imagenet and T=0.1; LARS at 0.3 x batch / 256.
    """
    import keras

    import keras_simclr as ks

    keras.utils.set_random_seed(0)
    size = config["image_size"]
    cifar = size <= 64
    model = ks.models.ContrastiveModel(
        encoder=ks.models.create_encoder(
            config["model"], size, width_multiplier=config["width_multiplier"]
        ),
        projection_head=ks.models.ProjectionHead(num_layers=2, output_dim=128),
        augmenter=ks.augment.SimCLRAugmentation(
            size, preset="cifar" if cifar else "imagenet", seed=0
        ),
        temperature=0.5 if cifar else 0.1,
        micro_batch_size=config["micro_batch_size"],
    )
    batch_size = config["batch_size"]
    model.compile(optimizer=ks.optimizers.LARS(0.3 * batch_size / 256, weight_decay=1e-6))
    return model


def one_batch_forever(images, backend):
    """`fit`'s input: the same ready uint8 batch every step (as `throughput`'s step-only)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.data.Dataset.from_tensors(images).repeat()

    def same_batch():
        while True:
            yield (images,)

    return same_batch()


def measure(config, output):
    """Runs one configuration in this process; writes its record to `output`.

    The RSS before the first step (model compiled, batch decoded, `fit`'s input made) goes to
    `output + ".pre"` first, so the parent knows it if it has to kill this process.
    """
    try:  # under memory pressure the kernel kills this process before anything else
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    common.select_backend(config["backend"])
    import keras

    size, batch_size = config["image_size"], config["batch_size"]
    jpegs, _ = common.read_split(config["data"], "train", batch_size)
    decode = common.decode_tf if config["backend"] == "tensorflow" else common.decode_pillow
    images = decode(jpegs, size if size > 32 else None)  # upscaled once above 32 px
    del jpegs
    model = build_model(config)
    data = one_batch_forever(images, config["backend"])
    pre_step = {"pre_step_rss_mb": resident_mb(), "source_shape": list(images.shape[1:])}
    with open(output + ".pre", "w") as f:
        json.dump(pre_step, f)

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.loss = float(logs["loss"])  # waits for the step
            self.times.append(time.perf_counter())

    timer = StepTimer()
    warmup, steps = config["warmup_steps"], config["steps"]
    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[timer])
    rates = common.step_rates(timer.times, warmup, batch_size)
    peak = resident_mb(field="VmHWM") or common.peak_rss_mb()
    record = {
        **pre_step,
        "peak_rss_mb": peak,
        "step_growth_mb": peak - pre_step["pre_step_rss_mb"],
        "images_per_s": rates["images_per_s"],
        "s_per_step": rates["ms_per_step"] / 1000,
        "s_per_image": 1 / rates["images_per_s"],
        "step_times_ms": rates["step_times_ms"],
        "first_step_s": rates["first_step_s"],
        "last_loss": timer.loss,
        "accelerator_peak_mb": common.accelerator_peak_mb(),
        "jit_compile": bool(model.jit_compile),
        "machine": common.keras_environment(),
    }
    with open(output, "w") as f:
        json.dump(record, f)


# ---------------------------------------------------------------- the parent


def run_child(config, memory_limit_mb, timeout_s):
    """Runs `config` in a child process, killing it over `memory_limit_mb` or `timeout_s`.

    Returns:
        The child's record plus `status`: "ok", "over the cap", "timed out" or "failed" (then
        with the end of its output); `max_rss_seen_mb` is the most the parent saw.
    """
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "record.json")
        with open(os.path.join(folder, "log.txt"), "w+") as log:
            command = [sys.executable, "-m", "benchmarks.gradient_cache"]
            command += ["--configuration", json.dumps(config), "--output", output]
            start = time.perf_counter()
            child = subprocess.Popen(
                command, cwd=common.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
            status, seen = None, 0.0
            while child.poll() is None:
                seen = max(seen, resident_mb(child.pid) or 0.0)
                if seen > memory_limit_mb:
                    status = "over the cap"
                elif time.perf_counter() - start > timeout_s:
                    status = "timed out"
                if status:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    break
                time.sleep(POLL_S)
            wall_s = time.perf_counter() - start
            record = {"status": status or "ok", "max_rss_seen_mb": seen, "wall_s": wall_s}
            for path in (output + ".pre", output):
                if os.path.exists(path):
                    with open(path) as f:
                        record.update(json.load(f))
            if status is None and (child.returncode != 0 or not os.path.exists(output)):
                log.seek(0)
                record.update(status="failed", returncode=child.returncode)
                record["log_tail"] = log.read()[-3000:]
    return record


def ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def compare(plain, cached, memory_limit_mb):
    """Cached / plain of time per image, peak RSS and the step's growth, for one model and batch.

    Where the plain step went over the cap, its peak is above the cap: the memory ratios are
    then bounds (`..._at_most`) and the time ratio is unknown.
    """
    result = {"plain_status": plain["status"], "cached_status": cached["status"]}
    if cached["status"] != "ok":
        return result
    if plain["status"] == "ok":
        result["time_per_image_ratio"] = ratio(cached["s_per_image"], plain["s_per_image"])
        result["peak_rss_ratio"] = ratio(cached["peak_rss_mb"], plain["peak_rss_mb"])
        result["step_growth_ratio"] = ratio(cached["step_growth_mb"], plain["step_growth_mb"])
    elif plain["status"] == "over the cap":
        result["peak_rss_ratio_at_most"] = ratio(cached["peak_rss_mb"], memory_limit_mb)
        if plain.get("pre_step_rss_mb") is not None:
            result["step_growth_ratio_at_most"] = ratio(
                cached["step_growth_mb"], memory_limit_mb - plain["pre_step_rss_mb"]
            )
    return result


def acceptance(comparisons, micro_batch_size):
    """The issue's figure per model, where the run has batch 1024 with micro_batch_size=64."""
    if micro_batch_size != ACCEPTANCE_MICRO_BATCH:
        return {}
    found = {}
    for model, by_batch in comparisons.items():
        c = by_batch.get(str(ACCEPTANCE_BATCH))
        if c is None:
            continue
        figure = {"batch_size": ACCEPTANCE_BATCH, "micro_batch_size": micro_batch_size}
        for memory in ("peak_rss", "step_growth"):
            value = c.get(f"{memory}_ratio", c.get(f"{memory}_ratio_at_most"))
            figure[f"{memory}_ratio"] = value
            figure[f"{memory}_holds"] = None if value is None else value <= ACCEPTANCE_MEMORY_RATIO
        value = c.get("time_per_image_ratio")
        figure["time_per_image_ratio"] = value
        figure["time_holds"] = None if value is None else value <= ACCEPTANCE_TIME_RATIO
        found[model] = figure
    return found


def number(value, spec):
    return "-" if value is None else format(value, spec)


def mb(value):
    return number(value, ",.0f")


def print_report(result):
    print(
        f"\n{result['config']['backend']}, {result['config']['steps']} timed steps after "
        f"{result['config']['warmup_steps']}, cap {mb(result['memory_limit_mb'])} MB"
    )
    header = (
        f"{'model':<16}{'px':>5}{'batch':>7}{'micro':>7}  {'status':<13}{'peak MB':>9}"
        f"{'pre MB':>9}{'growth MB':>11}{'images/s':>10}{'s/step':>9}"
    )
    print(header)
    for r in result["runs"]:
        ok = r["status"] == "ok"
        peak = r["peak_rss_mb"] if ok else None
        print(
            f"{r['model']:<16}{r['image_size']:>5}{r['batch_size']:>7}"
            f"{r['micro_batch_size'] or '-':>7}  {r['status']:<13}{mb(peak):>9}"
            f"{mb(r.get('pre_step_rss_mb')):>9}{mb(r.get('step_growth_mb')):>11}"
            f"{number(r['images_per_s'] if ok else None, '.1f'):>10}"
            f"{number(r['s_per_step'] if ok else None, '.2f'):>9}"
        )
    print("\ncached / plain:")
    for model, by_batch in result["comparisons"].items():
        for batch, c in by_batch.items():
            parts = [f"{model} batch {batch}:"]
            for key in (
                "time_per_image_ratio",
                "peak_rss_ratio",
                "step_growth_ratio",
                "peak_rss_ratio_at_most",
                "step_growth_ratio_at_most",
            ):
                if c.get(key) is not None:
                    parts.append(f"{key} {c[key]:.3f}")
            if len(parts) == 1:
                parts.append(f"plain {c['plain_status']}, cached {c['cached_status']}")
            print(" ".join(parts))
    for model, figure in result["acceptance"].items():
        parts = []
        for key, holds, bound in (
            ("peak_rss_ratio", "peak_rss_holds", ACCEPTANCE_MEMORY_RATIO),
            ("step_growth_ratio", "step_growth_holds", ACCEPTANCE_MEMORY_RATIO),
            ("time_per_image_ratio", "time_holds", ACCEPTANCE_TIME_RATIO),
        ):
            verdict = {True: "holds", False: "fails", None: "unknown"}[figure[holds]]
            parts.append(f"{key} {number(figure[key], '.3f')} (<= {bound}: {verdict})")
        print(
            f"acceptance, {model} batch {figure['batch_size']} micro "
            f"{figure['micro_batch_size']}: " + ", ".join(parts)
        )


def main(argv=None):
    args = parse_args(argv)
    if args.configuration is not None:
        measure(json.loads(args.configuration), args.output)
        return None
    limit_mb = args.memory_limit_gb * 2**10
    runs = []
    for config in configurations(args):
        if config.pop("skipped"):
            record = {"status": "not measured", "reason": "--skip"}
            runs.append({k: v for k, v in config.items() if k != "data"} | record)
            continue
        record = run_child(config, limit_mb, args.timeout_s)
        print(
            f"{config['model']} batch {config['batch_size']} micro "
            f"{config['micro_batch_size']}: {record['status']} ({record['wall_s']:.0f} s)",
            flush=True,
        )
        runs.append({k: v for k, v in config.items() if k != "data"} | record)
    comparisons = {}
    for plain, cached in zip(runs[::2], runs[1::2]):
        comparisons.setdefault(plain["model"], {})[str(plain["batch_size"])] = compare(
            plain, cached, limit_mb
        )
    machine = next((r.pop("machine") for r in runs if "machine" in r), None)
    for r in runs:
        r.pop("machine", None)
    result = {
        **common.report_header(),
        "machine": machine or common.machine(),
        "config": common.arguments_record(args) | {"models": {m: MODELS[m] for m in args.models}},
        "memory_limit_mb": limit_mb,
        "runs": runs,
        "comparisons": comparisons,
        "acceptance": acceptance(comparisons, args.micro_batch_size),
    }
    if args.tiny:
        result["config"]["models"] = {m: TINY_MODEL for m in args.models}
    del result["config"]["configuration"]
    print_report(result)
    common.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
