"""The lightly 1.6 (PyTorch) SimCLR reference: `throughput`'s and `quality`'s runs, with lightly.

Same model, head, temperature, batch, LARS schedule, data and augmentation as keras_simclr's
recipe (`lightly_model`; benchmarks/README.md lists where they differ). `--mode throughput`
writes `throughput`'s fields, `--mode quality` `quality`'s, so each comparison is two JSON files
side by side. Imports neither Keras nor TensorFlow; needs torch, torchvision and lightly.

    python -m benchmarks.lightly_reference --mode throughput --batch_size 256 --output lt.json
    python -m benchmarks.lightly_reference --mode quality --tiny --output /tmp/lq.json  # CI
"""

import argparse
import os
import time

from benchmarks import common
from benchmarks import lightly_knn
from benchmarks import lightly_model
from benchmarks import protocols


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["throughput", "quality"], default="throughput")
    parser.add_argument(
        "--device", default=None, help="torch device; default: cuda if available, else cpu"
    )
    parser.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16"],
        default="float32",
        help="mixed_bfloat16: torch.autocast to bfloat16",
    )
    parser.add_argument(
        "--num_workers", type=int, default=None, help="DataLoader workers; default: os.cpu_count()"
    )
    protocols.add_throughput_arguments(parser)  # --mode throughput
    protocols.add_run_arguments(parser)  # --mode quality, and the shared ones
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="CI mode: width 0.125, batch 16; throughput: 2 steps on 64 images; "
        "quality: 128 training and 64 test images, 1 epoch",
    )
    args = parser.parse_args(argv)
    if args.model not in lightly_model.MODELS:
        parser.error(
            f"Unknown --model; known: {', '.join(sorted(lightly_model.MODELS))}. "
            f"Received: {args.model!r}"
        )
    if args.num_workers is not None and args.num_workers < 0:
        parser.error(f"--num_workers must be >= 0. Received: num_workers={args.num_workers}")
    if args.mode == "throughput":
        # The quality arguments do not apply: a constant learning rate, as `throughput`.
        return protocols.check_throughput_args(parser, args)
    if args.tiny:
        protocols.apply_tiny(args)
    return protocols.check_run_arguments(parser, args)


# ---------------------------------------------------------------- data


def simclr_transform():
    """lightly's SimCLR transform, CIFAR recipe: equal to keras_simclr's "cifar" preset."""
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(
        input_size=32,
        cj_prob=0.8,
        cj_strength=0.5,
        min_scale=0.08,
        random_gray_scale=0.2,
        gaussian_blur=0.0,
        vf_prob=0.0,
        hf_prob=0.5,
        rr_prob=0.0,
        normalize=None,
    )


class ViewDataset:
    """Decoded uint8 images -> the transform's two views of each (a map-style dataset)."""

    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index]))


def make_loader(images, args, seed=0):
    import torch

    workers = os.cpu_count() if args.num_workers is None else args.num_workers
    return torch.utils.data.DataLoader(
        ViewDataset(images, simclr_transform()),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=args.device.startswith("cuda"),
    )


def batches_forever(loader):
    while True:
        yield from loader


def timed_steps(step, batches, args):
    """Runs `warmup_steps + steps` steps; returns `throughput`'s timing fields."""
    losses = []
    times = common.run_steps(
        lambda: losses.append(step(next(batches))), args.warmup_steps + args.steps
    )
    return protocols.throughput_timings(times, losses[-1], args)


# ---------------------------------------------------------------- reports


def environment(args):
    """`common.machine()` plus torch's versions, device and threads."""
    import lightly
    import numpy as np
    import torch
    import torchvision

    info = {
        **common.machine(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightly": lightly.__version__,
        "numpy": np.__version__,
        "backend": "torch",
        "device": args.device,
        "torch_num_threads": torch.get_num_threads(),
    }
    if args.device.startswith("cuda"):
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def accelerator_peak_mb(args):
    import torch

    if args.device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def common_config(args):
    return {
        **common.arguments_record(args),
        "width_multiplier": args.width_multiplier or 1,
        "image_size": 32,
        "temperature": lightly_model.TEMPERATURE,
        "projection_dim": lightly_model.PROJECTION_DIM,
        "optimizer": "lightly.utils.lars.LARS",
        "weight_decay": lightly_model.WEIGHT_DECAY,
        "peak_learning_rate": lightly_model.BASE_LEARNING_RATE * args.batch_size / 256,
        "augmentation": "lightly.transforms.SimCLRTransform(input_size=32, cj_strength=0.5, "
        "min_scale=0.08, gaussian_blur=0.0, normalize=None) in the DataLoader "
        "workers",
        "num_workers": os.cpu_count() if args.num_workers is None else args.num_workers,
    }


def decode(jpegs_and_labels):
    """Decodes `read_split`'s JPEGs without Keras; returns (images, labels, seconds)."""
    jpegs, labels = jpegs_and_labels
    start = time.perf_counter()
    return common.decode_without_keras(jpegs), labels, time.perf_counter() - start


def run_throughput(args):
    import torch

    images, _, decode_s = decode(common.read_split(args.data, "train", args.num_images))
    model, criterion, optimizer, _ = lightly_model.build_simclr(args)
    model.to(args.device).train()
    # A constant learning rate, as `throughput`.
    step = lightly_model.make_step(model, criterion, optimizer, None, args)
    loader = make_loader(images, args, seed=args.seed)
    # Step-only: one ready batch of views (made by the same transform), every step.
    ready = next(
        iter(
            torch.utils.data.DataLoader(
                ViewDataset(images, simclr_transform()), batch_size=args.batch_size
            )
        )
    )
    step_only = timed_steps(step, iter(lambda: ready, None), args)
    end_to_end = timed_steps(step, batches_forever(loader), args)
    result = {
        **common.report_header(),
        "machine": environment(args),
        "implementation": "lightly",
        "config": {
            **common_config(args),
            "source_shape": list(images.shape[1:]),
            "step_only_feed": "one ready batch of two augmented views (made once by "
            "SimCLRTransform), every step; the augmentation is not timed",
        },
        "decode_s": decode_s,
        "decode_images_per_s": len(images) / decode_s,
        "compile_s": step_only["first_step_s"],
        "step_only": step_only,
        "end_to_end": end_to_end,
        "ratio": end_to_end["images_per_s"] / step_only["images_per_s"],
        "peak_rss_mb": common.peak_rss_mb(),
        "accelerator_peak_mb": accelerator_peak_mb(args),
    }
    print(
        f"\nlightly {args.model} 32px batch {args.batch_size}, torch {args.device} "
        f"{args.precision}, {args.steps} timed steps after {args.warmup_steps}, "
        f"{result['config']['num_workers']} workers"
    )
    protocols.print_modes(result)
    print(
        f"ratio end_to_end / step_only: {result['ratio']:.3f}; first step: "
        f"{result['compile_s']:.2f} s; decode: {decode_s:.2f} s for {len(images)} images; "
        f"peak RSS: {result['peak_rss_mb']:.0f} MB"
    )
    return result


def run_quality(args):
    started = time.perf_counter()
    train_images, train_labels, train_decode_s = decode(
        common.read_split(args.data, "train", args.train_examples)
    )
    test_images, test_labels, test_decode_s = decode(
        common.read_split(args.data, "test", args.eval_examples)
    )

    def evaluate(backbone):
        bank = lightly_knn.extract_features(backbone, train_images, args)
        queries = lightly_knn.extract_features(backbone, test_images, args)
        predictions = (
            lightly_knn.weighted_knn_predict(
                bank,
                train_labels,
                queries,
                10,
                k=min(args.knn_k, len(bank)),
                temperature=args.knn_temperature,
            )
            .cpu()
            .numpy()
        )
        return float((predictions == test_labels).mean())

    steps_per_epoch = len(train_images) // args.batch_size
    model, criterion, optimizer, _ = lightly_model.build_simclr(args)
    model.to(args.device).train()
    scheduler = lightly_model.make_scheduler(optimizer, args, steps_per_epoch)
    step = lightly_model.make_step(model, criterion, optimizer, scheduler, args)
    loader = make_loader(train_images, args, seed=args.seed)
    max_epochs = args.epochs or 10**6  # --seconds alone: until the time is up
    epochs, train_s, first_step_s, stop = [], 0.0, None, False
    fit_start = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        epoch_start = last_step = time.perf_counter()
        steps, loss_sum = 0, 0.0
        for views in loader:
            loss_sum += step(views)
            last_step = time.perf_counter()
            steps += 1
            if first_step_s is None:
                first_step_s = last_step - epoch_start
            if args.seconds and train_s + last_step - epoch_start >= args.seconds:
                stop = True
                break
        epoch_s = last_step - epoch_start
        train_s += epoch_s
        protocols.close_epoch(
            epochs,
            args,
            epoch,
            steps,
            steps == steps_per_epoch,
            epoch_s,
            loss_sum / max(steps, 1),
            evaluate=lambda: evaluate(model.backbone),
            last=stop or epoch == max_epochs,
        )
        if stop:
            break
    fit_s = time.perf_counter() - fit_start
    warmup, total = protocols.schedule_steps(args, steps_per_epoch)
    result = {
        **common.report_header(),
        "machine": environment(args),
        "implementation": "lightly",
        "config": {**common_config(args), "warmup_steps": warmup, "total_steps": total},
        "decode_s": train_decode_s + test_decode_s,
        **protocols.summarize(epochs, args, steps_per_epoch, len(train_images), len(test_images)),
        "compile_s": first_step_s,
        "fit_s": fit_s,
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb": common.peak_rss_mb(),
        "accelerator_peak_mb": accelerator_peak_mb(args),
    }
    protocols.print_report(
        result,
        f"lightly {args.model} (width {result['config']['width_multiplier']}) batch "
        f"{args.batch_size}, torch {args.device} {args.precision}, {len(train_images)} "
        f"training images, kNN on {len(test_images)} test images",
    )
    return result


def main(argv=None):
    args = parse_args(argv)
    try:
        import lightly  # noqa: F401
        import torch
        import torchvision  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            f"lightly_reference needs torch, torchvision and lightly "
            f"(pip install torch torchvision lightly). Received: {error}"
        ) from None
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    result = run_throughput(args) if args.mode == "throughput" else run_quality(args)
    common.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
