"""SimCLR pretraining throughput with `model.fit`, with the input pipeline and without.

Times *step-only* (one ready uint8 batch every step) and *end-to-end* (the CIFAR-10 JPEGs decoded
once, then shuffled, batched and prefetched by keras_simclr.data) in one process, and reports
images/s of both, their ratio, the first step, the decode time and peak memory (README.md).

    python -m benchmarks.throughput --backend jax --precision mixed_bfloat16 --output t.json
    python -m benchmarks.throughput --tiny --output /tmp/t.json   # the CI smoke test
"""

import argparse
import time

from benchmarks import common
from benchmarks import protocols


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument(
        "--model", default="resnet18_cifar", help="a keras_simclr.models.ENCODERS name"
    )
    parser.add_argument(
        "--width_multiplier", type=float, default=None, help="override the model's width"
    )
    parser.add_argument("--image_size", type=int, default=32, help="side of the augmented views")
    parser.add_argument(
        "--source_size",
        type=int,
        default=None,
        help="upscale the decoded 32 px images once to this side (e.g. 256 for 224 crops)",
    )
    parser.add_argument("--batch_size", type=int, default=256)
    protocols.add_throughput_arguments(parser)
    parser.add_argument(
        "--tiny", action="store_true", help="CI mode: width 0.125, batch 16, 2 steps, 64 images"
    )
    common.add_data_arguments(parser)
    return protocols.check_throughput_args(parser, parser.parse_args(argv))


def build_model(args):
    """SimCLR at `--image_size`: the cifar preset and T=0.5 up to 64 px, else imagenet and 0.1.

    LARS at a constant 0.3 x batch / 256 (weight decay 1e-6): a schedule does not change speed.
    """
    import keras

    import keras_simclr as ks

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(args.precision)
    cifar = args.image_size <= 64
    model = ks.models.ContrastiveModel(
        encoder=ks.models.create_encoder(
            args.model, args.image_size, width_multiplier=args.width_multiplier
        ),
        projection_head=ks.models.ProjectionHead(num_layers=2, output_dim=128),
        augmenter=ks.augment.SimCLRAugmentation(
            args.image_size, preset="cifar" if cifar else "imagenet", seed=0
        ),
        temperature=0.5 if cifar else 0.1,
    )
    model.compile(optimizer=ks.optimizers.LARS(0.3 * args.batch_size / 256, weight_decay=1e-6))
    return model


def feeds(images, args):
    """(step-only, end-to-end) inputs for `fit`, both endless.

    TensorFlow: `tf.data` (the pipeline of `keras_simclr.data`'s `TFImageDataset`, imported from
    its module: the arrays loader gives the NumPy one); JAX: the NumPy `ShuffledBatches` of
    `keras_simclr.data.load_arrays`, gathered ahead in 2 threads.
    """
    batch = images[: args.batch_size]
    if args.backend == "tensorflow":
        import tensorflow as tf

        from keras_simclr.data.tf_image_dataset import TFImageDataset

        pipeline = TFImageDataset.from_arrays(images).training_batches(
            args.batch_size, seed=0, repeat=True
        )
        return (
            tf.data.Dataset.from_tensors(batch).repeat(),
            pipeline.map(lambda x, y: x),
        )  # the labels are not used

    from keras_simclr import data

    def same_batch_forever():
        while True:
            yield (batch,)

    pipeline = data.load_arrays(images).training_batches(
        args.batch_size, seed=0, repeat=True, workers=2, max_queue_size=2
    )
    return same_batch_forever(), pipeline


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
    model.fit(
        data,
        steps_per_epoch=args.warmup_steps + args.steps,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[timer],
    )
    return protocols.throughput_timings(timer.times, timer.loss, args)


def main(argv=None):
    args = parse_args(argv)
    common.select_backend(args.backend)

    from keras_simclr.models import ENCODERS

    if args.model not in ENCODERS:
        raise SystemExit(
            f"Unknown --model; known: {', '.join(sorted(ENCODERS))}. Received: {args.model!r}"
        )

    jpegs, _ = common.read_split(args.data, "train", args.num_images)
    decode = common.decode_tf if args.backend == "tensorflow" else common.decode_pillow
    start = time.perf_counter()
    images = decode(jpegs, args.source_size)
    decode_s = time.perf_counter() - start
    del jpegs

    model = build_model(args)
    step_data, pipeline = feeds(images, args)
    step_only = timed_fit(model, step_data, args)
    end_to_end = timed_fit(model, pipeline, args)
    result = {
        **common.report_header(),
        "machine": common.keras_environment(),
        "config": {
            **common.arguments_record(args),
            "width_multiplier": args.width_multiplier or ENCODERS[args.model][1],
            "source_shape": list(images.shape[1:]),
            "jit_compile": bool(model.jit_compile),
            "step_only_feed": "model.fit on one uint8 batch repeated "
            + (
                "(tf.data.Dataset.from_tensors(batch).repeat())"
                if args.backend == "tensorflow"
                else "(a Python generator of the same NumPy array)"
            ),
        },
        "decode_s": decode_s,
        "decode_images_per_s": len(images) / decode_s,
        "compile_s": step_only["first_step_s"],
        "step_only": step_only,
        "end_to_end": end_to_end,
        "ratio": end_to_end["images_per_s"] / step_only["images_per_s"],
        "peak_rss_mb": common.peak_rss_mb(),
        "accelerator_peak_mb": common.accelerator_peak_mb(),
    }

    print(
        f"\n{args.model} {args.image_size}px batch {args.batch_size}, {args.backend} "
        f"{args.precision}, {args.steps} timed steps after {args.warmup_steps}"
    )
    protocols.print_modes(result)
    print(
        f"ratio end_to_end / step_only: {result['ratio']:.3f}; compile (first step): "
        f"{result['compile_s']:.2f} s; decode: {decode_s:.2f} s for {len(images)} images; "
        f"peak RSS: {result['peak_rss_mb']:.0f} MB"
    )
    common.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
