"""Where a SimCLR training step's time goes, part by part (TensorFlow).

Builds `throughput`'s model and times each part in its own `tf.function` on one ready batch of
CIFAR-10 images: the augmentation, the encoder forward, forward + backward, the whole loss
forward, all gradients, the LARS update alone and the whole `train_on_batch` step (median ms and
share of the step), with the encoder's GFLOP/s against a float32 matmul (README.md).

    python -m benchmarks.step_breakdown --batch_size 256 --steps 3 --output step_breakdown.json
    python -m benchmarks.step_breakdown --tiny   # the CI smoke test
"""

import argparse
import statistics
import time

from benchmarks import common

# Forward multiply-adds x 2 per 32x32 image of ResNet-18 with the CIFAR stem
# (3x3 stride-1 stem, no max-pool): 0.556 GMACs.
RESNET18_CIFAR_FLOPS = 1.112e9

PARTS = (
    "augment",
    "encoder_forward",
    "encoder_forward_backward",
    "loss_forward",
    "gradients",
    "optimizer_apply",
    "train_step",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18_cifar")
    parser.add_argument("--width_multiplier", type=float, default=None)
    parser.add_argument("--batch_size", type=int, default=256, help="images (2x views)")
    parser.add_argument("--steps", type=int, default=3, help="timed calls per part")
    parser.add_argument("--warmup_steps", type=int, default=1, help="untimed calls first (>= 1)")
    parser.add_argument(
        "--flops_per_image",
        type=float,
        default=None,
        help="encoder forward FLOPs per view; default: known for resnet18_cifar",
    )
    parser.add_argument("--tiny", action="store_true", help="CI mode: width 0.125, batch 8, 1 step")
    common.add_data_arguments(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.width_multiplier, args.batch_size, args.steps = 0.125, 8, 1
    if args.steps < 1 or args.warmup_steps < 1 or args.batch_size < 2:
        parser.error(
            "Need --steps >= 1, --warmup_steps >= 1 and --batch_size >= 2. Received: "
            f"steps={args.steps}, warmup_steps={args.warmup_steps}, batch_size={args.batch_size}"
        )
    if (
        args.flops_per_image is None
        and args.model == "resnet18_cifar"
        and not args.width_multiplier
    ):
        args.flops_per_image = RESNET18_CIFAR_FLOPS
    return args


def median_ms(fn, steps, warmup_steps):
    """Median wall time of `fn()` in ms over `steps` calls after `warmup_steps`."""
    for _ in range(warmup_steps):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def matmul_gflops(size=2048, repeats=5):
    """float32 matmul GFLOP/s of this process's TensorFlow (the machine's ceiling)."""
    import tensorflow as tf

    a = tf.random.uniform((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    ms = median_ms(lambda: matmul().numpy(), repeats, 1)
    return 2 * size**3 / (ms / 1000) / 1e9


def main(argv=None):
    args = parse_args(argv)
    common.select_backend("tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_simclr as ks

    keras.utils.set_random_seed(0)
    jpegs, _ = common.read_split(args.data, "train", args.batch_size)
    batch = tf.constant(np.stack([tf.io.decode_jpeg(j, channels=3).numpy() for j in jpegs]))
    size = int(batch.shape[1])
    model = ks.models.ContrastiveModel(
        encoder=ks.models.create_encoder(args.model, size, width_multiplier=args.width_multiplier),
        projection_head=ks.models.ProjectionHead(num_layers=2, output_dim=128),
        augmenter=ks.augment.SimCLRAugmentation(size, preset="cifar", seed=0),
        temperature=0.5,
    )
    model.compile(optimizer=ks.optimizers.LARS(0.3 * args.batch_size / 256, weight_decay=1e-6))
    model.train_on_batch(batch)  # builds every variable, the optimizer's too

    def two_views():  # as ContrastiveModel makes them: one augmenter call on [x; x]
        return model.augmenter(tf.concat([batch, batch], axis=0), training=True)

    views = two_views()
    variables = model.trainable_variables
    encoder_variables = model.encoder.trainable_variables

    def loss_of(images):
        outputs = model(images, training=True)
        return model.compute_loss(x=images, y_pred=outputs, training=True)

    @tf.function
    def augment():
        return tf.reduce_sum(two_views())

    @tf.function
    def encoder_forward():
        return tf.reduce_sum(model.encoder(views, training=True))

    @tf.function
    def encoder_forward_backward():
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(model.encoder(views, training=True))
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(total, encoder_variables)])

    @tf.function
    def loss_forward():
        return loss_of(batch)

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            loss = loss_of(batch)
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, variables)])

    fixed_grads = [tf.fill(v.shape, 1e-6) for v in variables]

    @tf.function
    def optimizer_apply():
        model.optimizer.apply(fixed_grads, variables)
        return model.optimizer.iterations

    parts = {
        "augment": lambda: augment().numpy(),
        "encoder_forward": lambda: encoder_forward().numpy(),
        "encoder_forward_backward": lambda: encoder_forward_backward().numpy(),
        "loss_forward": lambda: loss_forward().numpy(),
        "gradients": lambda: gradients().numpy(),
        "optimizer_apply": lambda: optimizer_apply().numpy(),
        "train_step": lambda: model.train_on_batch(batch),
    }
    timings = {name: median_ms(fn, args.steps, args.warmup_steps) for name, fn in parts.items()}
    step_ms = timings["train_step"]
    ceiling = matmul_gflops(512 if args.tiny else 2048)
    result = {
        **common.report_header(),
        "machine": common.keras_environment(),
        "config": common.arguments_record(args),
        "jit_compile": bool(model.jit_compile),
        "views_per_step": 2 * args.batch_size,
        "ms": timings,
        "share_of_train_step": {k: v / step_ms for k, v in timings.items()},
        "matmul_gflops": ceiling,
    }
    if args.flops_per_image:
        forward = args.flops_per_image * 2 * args.batch_size
        result["encoder_gflops"] = {
            "forward": forward / (timings["encoder_forward"] / 1000) / 1e9,
            "forward_backward": 3 * forward / (timings["encoder_forward_backward"] / 1000) / 1e9,
        }
    print(
        f"\n{args.model} batch {args.batch_size} ({2 * args.batch_size} views), median of "
        f"{args.steps} after {args.warmup_steps}; matmul ceiling {ceiling:.0f} GFLOP/s"
    )
    print(f"{'part':<26}{'ms':>10}{'share of step':>15}")
    for name in PARTS:
        print(f"{name:<26}{timings[name]:>10.1f}{timings[name] / step_ms:>15.1%}")
    if "encoder_gflops" in result:
        g = result["encoder_gflops"]
        print(
            f"encoder GFLOP/s: forward {g['forward']:.1f}, "
            f"forward+backward {g['forward_backward']:.1f} "
            f"({g['forward_backward'] / ceiling:.0%} of matmul)"
        )
    common.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
