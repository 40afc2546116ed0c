"""Where a SimCLR training step spends its time, part by part (TensorFlow).

`throughput.py` says how fast a whole step is; this script says why. It
builds the same `ContrastiveModel` (ResNet encoder, 2-layer head, SimCLR
augmentation, LARS, NT-Xent) and times, each in its own `tf.function`
(compiled as `fit` compiles it: XLA only where `jit_compile` would be on),
on one ready uint8 batch of real CIFAR-10 images:

- `augment`: the two-view augmentation of the batch (2N views);
- `encoder_forward`: the encoder on the 2N views, training mode;
- `encoder_forward_backward`: the same plus the gradients of its variables;
- `loss_forward`: augmentation, encoder, head and NT-Xent, no gradients;
- `gradients`: `loss_forward` plus the gradients of every variable;
- `optimizer_apply`: LARS applying ready gradients to every variable;
- `train_step`: one whole `model.train_on_batch` step (what `fit` runs).

Each part is timed `--steps` times after `--warmup_steps` calls (the first
traces and compiles) and reported as the median in ms and as a share of the
whole step, with the encoder's GFLOP/s where the FLOP count is known
(`--flops_per_image`, forward, multiply-adds x 2; backward taken as 2x
forward) against a dense float32 matmul measured in the same process, so the
figure reads as "how close the convolutions come to the machine's matmul".

Example:

    python benchmarks/step_breakdown.py --batch_size 256 --steps 3 \\
        --output step_breakdown.json
    python benchmarks/step_breakdown.py --tiny   # the CI smoke test
"""

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks.throughput import DEFAULT_DATA  # noqa: E402
from benchmarks.throughput import environment  # noqa: E402
from benchmarks.throughput import read_jpegs  # noqa: E402
from benchmarks.throughput import write_output  # noqa: E402

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
    parser.add_argument("--flops_per_image", type=float, default=None,
                        help="encoder forward FLOPs per view; default: known for resnet18_cifar")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared cifar10_jpeg.npz")
    parser.add_argument("--tiny", action="store_true", help="CI mode: width 0.125, batch 8, 1 step")
    parser.add_argument("--output", default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.tiny:
        args.width_multiplier, args.batch_size, args.steps = 0.125, 8, 1
    if args.steps < 1 or args.warmup_steps < 1 or args.batch_size < 2:
        parser.error("Need --steps >= 1, --warmup_steps >= 1 and --batch_size >= 2. Received: "
                     f"steps={args.steps}, warmup_steps={args.warmup_steps}, batch_size={args.batch_size}")
    if args.flops_per_image is None and args.model == "resnet18_cifar" and not args.width_multiplier:
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
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # keras_simclr first: it turns on TensorFlow's oneDNN kernels before
    # TensorFlow loads, as it does for users (keras_simclr/onednn.py).
    import keras_simclr as ks  # isort: skip
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    jpegs = read_jpegs(args.data, args.batch_size)
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
    views = model._views(batch)
    variables = model.trainable_variables
    encoder_variables = model.encoder.trainable_variables

    def loss_of(images):
        outputs = model(images, training=True)
        return model.compute_loss(x=images, y_pred=outputs, training=True)

    @tf.function
    def augment():
        return tf.reduce_sum(model._views(batch))

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
        "command": shlex.join(["python"] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": environment(),
        "config": {k: v for k, v in vars(args).items() if k not in ("output", "data")},
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
    print(f"\n{args.model} batch {args.batch_size} ({2 * args.batch_size} views), median of "
          f"{args.steps} after {args.warmup_steps}; matmul ceiling {ceiling:.0f} GFLOP/s")
    print(f"{'part':<26}{'ms':>10}{'share of step':>15}")
    for name in PARTS:
        print(f"{name:<26}{timings[name]:>10.1f}{timings[name] / step_ms:>15.1%}")
    if "encoder_gflops" in result:
        g = result["encoder_gflops"]
        print(f"encoder GFLOP/s: forward {g['forward']:.1f}, forward+backward {g['forward_backward']:.1f} "
              f"({g['forward_backward'] / ceiling:.0%} of matmul)")
    write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
