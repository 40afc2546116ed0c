"""The lightly (PyTorch) SimCLR reference: same model, batch, data and augmentation.

Trains SimCLR the way lightly's docs and CIFAR-10 benchmarks do it, on the
same CIFAR-10 JPEGs as `benchmarks/throughput.py` and `benchmarks/quality.py`,
and reports the same figures with the same JSON fields, so that each
comparison with keras_simclr is two runs side by side:

- `--mode throughput` (as `throughput.py`): images/s of *step-only* (the same
  ready batch of two augmented views every step: forward, NT-Xent, backward,
  LARS; the augmentation is not in the step, as lightly augments in the
  DataLoader) and *end-to-end* (a `torch.utils.data.DataLoader` with
  `num_workers=os.cpu_count()` applying `SimCLRTransform` to the decoded
  images, and the same steps), their ratio, the first step's time, the
  decode time and peak RSS. Note that keras_simclr's step-only includes the
  augmentation (it runs inside its compiled step): compare end-to-end
  figures for the whole job.
- `--mode quality` (as `quality.py`): `--epochs` epochs or `--seconds` of
  training, weighted kNN (k=200, T=0.1) on the test split after every
  `--knn_every`-th epoch and at the end, training time per epoch with the
  kNN time apart, images/s.

The parts, matched to keras_simclr's CLI defaults for `--method simclr` on
32 px images (`keras_simclr.cli.pretrain`):

- backbone: torchvision `resnet18(zero_init_residual=True)` with the CIFAR
  stem (`conv1` a 3x3 stride-1 convolution, `maxpool = Identity`, as in
  lightly's CIFAR benchmarks) and `fc = Identity`, giving the 512 pooled
  features (keras_simclr: `ResNet(18, cifar_stem=True)`, whose last
  BatchNorm of each residual branch also starts at zero). Other widths
  (`--width_multiplier`, e.g. 0.125 in `--tiny`) scale every stage's
  channels as keras_simclr does (`int(64 * w)`, ...).
- head: Linear-BN-ReLU-Linear, 512-512-128, the last Linear with a bias
  and no BatchNorm (keras_simclr: `ProjectionHead(2, hidden_dim=None,
  output_dim=128)`), built from lightly's
  `lightly.models.modules.heads.ProjectionHead` blocks, because lightly's
  `SimCLRProjectionHead(512, 512, 128, batch_norm=True)` (lightly 1.6) also
  puts a BatchNorm on the 128-d output (SimCLR v2's head), which
  keras_simclr's SimCLR v1 head has not.
- loss: `lightly.loss.NTXentLoss(temperature=0.5)` (keras_simclr's default
  for CIFAR-size images). The two views go through the model in two
  calls, `model(x0), model(x1)`, as in lightly's SimCLR example, so
  BatchNorm normalizes each view's batch on its own; keras_simclr encodes
  the `2N` views in one call (BatchNorm over both, as google-research/simclr).
- augmentation: `lightly.transforms.SimCLRTransform(input_size=32,
  cj_strength=0.5, min_scale=0.08, gaussian_blur=0.0, normalize=None)`,
  lightly's CIFAR recipe, equal in its parameters to keras_simclr's
  `"cifar"` preset: random resized crop (area 0.08-1, aspect 3/4-4/3),
  horizontal flip p=0.5, color jitter p=0.8 in a random order with
  brightness, contrast and saturation factors in [0.6, 1.4] and hue shift
  in [-0.1, 0.1] (0.8s, 0.8s, 0.8s, 0.2s at strength s=0.5), grayscale
  p=0.2, no blur, no rotation, no vertical flip. Where they differ: lightly
  (torchvision on PIL images) works on uint8 images, so every jitter
  operation rounds to 8 bits, and its hue/saturation go through PIL's
  8-bit HSV; keras_simclr works in float32 (clipping to [0, 1] after every
  operation as google-research/simclr does) with antialiased bilinear
  resampling. `normalize=None` feeds the network [0, 1] images as
  keras_simclr does (lightly's default would apply the ImageNet mean/std).
- optimizer: `lightly.utils.lars.LARS` (momentum 0.9, trust coefficient
  0.001) with weight decay 1e-6 on the weights and a parameter group with
  weight decay 0 for biases and BatchNorm parameters (1-D parameters),
  which lightly's LARS then also leaves out of the layer adaptation, as
  keras_simclr's LARS excludes them from both; learning rate
  `0.3 * batch / 256` with a linear warmup over `min(10, 0.1 * schedule
  epochs)` epochs from 0, then cosine decay to 0, stepped every step, as
  `keras_simclr.cli.pretrain` plans it. Where the two LARS differ: lightly
  (from PyTorch Lightning Bolts) scales by `trust * ||w|| / (||g|| +
  wd ||w||)` and applies the learning rate after the momentum (`v = m v +
  trust (g + wd w); w -= lr v`); keras_simclr (google-research/simclr)
  scales by `trust * ||w|| / ||g + wd w||` and applies it before (`v = m v
  + lr trust (g + wd w); w -= v`): nearly the same update, the same at a
  constant learning rate when the decay is 0.
- data: the same training JPEGs (`throughput.read_jpegs` and
  `quality.read_split`: the same fixed shuffled subsets), decoded once with
  Pillow (`decode_jpegs`, which keeps Keras and TensorFlow out of this
  process), reshuffled every epoch, full batches (`drop_last=True`).
- kNN: `weighted_knn_predict` below, the same definition as
  `keras_simclr.evaluation.weighted_knn_predict` (cosine similarity of
  L2-normalized backbone features of the [0, 1] images, the k most similar
  training images vote with weight `exp(similarity / T)`), checked against
  it and against `lightly.utils.benchmarking.knn_predict` in
  `tests/benchmarks/lightly_reference_test.py`.

Examples (from the repository root, with torch, torchvision and lightly
installed):

    # throughput, ResNet-18 CIFAR, batch 256, on CPU
    python benchmarks/lightly_reference.py --mode throughput --batch_size 256 \\
        --output lightly_throughput.json

    # quality: 10 epochs, kNN every epoch
    python benchmarks/lightly_reference.py --mode quality --epochs 10 \\
        --output lightly_quality_10ep.json

    # the CI smoke tests
    python benchmarks/lightly_reference.py --mode throughput --tiny --output /tmp/lt.json
    python benchmarks/lightly_reference.py --mode quality --tiny --output /tmp/lq.json
"""

import argparse
import datetime
import math
import os
import platform
import shlex
import sys
import time

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCHMARKS_DIR not in sys.path:
    sys.path.insert(0, BENCHMARKS_DIR)

import quality  # noqa: E402  (stdlib-only at import, like throughput)
import throughput  # noqa: E402

# name: (torchvision constructor, block kind, blocks per stage)
MODELS = {
    "resnet18_cifar": ("resnet18", "basic", (2, 2, 2, 2)),
    "resnet34_cifar": ("resnet34", "basic", (3, 4, 6, 3)),
    "resnet50_cifar": ("resnet50", "bottleneck", (3, 4, 6, 3)),
}
BASE_LEARNING_RATE = 0.3  # keras_simclr.cli.pretrain: lars, linear scaling
WEIGHT_DECAY = 1e-6
MOMENTUM = 0.9
TEMPERATURE = 0.5  # NT-Xent, CIFAR-size images
PROJECTION_DIM = 128


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["throughput", "quality"], default="throughput")
    parser.add_argument("--device", default=None, help="torch device; default: cuda if available, else cpu")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                        help="mixed_bfloat16: torch.autocast to bfloat16")
    parser.add_argument("--num_workers", type=int, default=None,
                        help="DataLoader workers; default: os.cpu_count()")
    # Throughput mode (as throughput.py).
    parser.add_argument("--steps", type=int, default=10, help="throughput: timed steps per mode")
    parser.add_argument("--warmup_steps", type=int, default=2,
                        help="throughput: untimed steps before them, at least 1")
    parser.add_argument("--num_images", type=int, default=10_000,
                        help="throughput: training JPEGs decoded for the end-to-end pipeline")
    # Quality mode (as quality.py), and the shared ones.
    quality.add_run_arguments(parser)
    parser.add_argument("--tiny", action="store_true",
                        help="CI mode: width 0.125, batch 16; throughput: 2 steps on 64 images; "
                             "quality: 128 training and 64 test images, 1 epoch")
    args = parser.parse_args(argv)
    if args.model not in MODELS:
        parser.error(f"Unknown --model; known: {', '.join(sorted(MODELS))}. Received: {args.model!r}")
    if args.num_workers is not None and args.num_workers < 0:
        parser.error(f"--num_workers must be >= 0. Received: num_workers={args.num_workers}")
    if args.mode == "throughput":
        throughput.check_throughput_args(parser, args)
        # The quality arguments do not apply: a constant learning rate, as throughput.py.
        return args
    if args.tiny:
        quality.apply_tiny(args)
    return quality.check_run_arguments(parser, args)


# ---------------------------------------------------------------- model


def build_backbone(model_name, width_multiplier=None):
    """A torchvision ResNet with the CIFAR stem, returning pooled features.

    At width 1 it is torchvision's own `resnet18()` (or 34, 50) with `conv1`
    replaced by a 3x3 stride-1 convolution, `maxpool` and `fc` by
    `Identity`, as lightly's CIFAR benchmarks do. Other widths scale every
    stage as keras_simclr's `ResNet` does.
    """
    import torchvision
    from torch import nn
    from torchvision.models import resnet

    constructor, kind, blocks = MODELS[model_name]
    width = width_multiplier or 1
    if width == 1:
        net = getattr(torchvision.models, constructor)(weights=None, zero_init_residual=True)
    else:
        net = _scaled_resnet(resnet.BasicBlock if kind == "basic" else resnet.Bottleneck, blocks, width)
    stem = net.bn1.num_features
    net.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    last = net.layer4[-1]
    net.feature_dim = int((last.conv2 if kind == "basic" else last.conv3).out_channels)
    return net


def _scaled_resnet(block, blocks, width):
    """torchvision's ResNet with every stage's channels times `width`."""
    from torch import nn
    from torchvision.models import resnet

    class ScaledResNet(resnet.ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            widths = [int(base * width) for base in (64, 128, 256, 512)]
            if min(widths) < 1:
                raise ValueError(f"--width_multiplier is too small. Received: width_multiplier={width}")
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
            self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, widths[0], blocks[0])
            self.layer2 = self._make_layer(block, widths[1], blocks[1], stride=2)
            self.layer3 = self._make_layer(block, widths[2], blocks[2], stride=2)
            self.layer4 = self._make_layer(block, widths[3], blocks[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Identity()
            for m in self.modules():  # torchvision's initialization, zero_init_residual=True
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            for m in self.modules():
                if isinstance(m, resnet.Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, resnet.BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    return ScaledResNet()


def projection_head(dim):
    """keras_simclr's `ProjectionHead(2, hidden_dim=None, output_dim=128)` in lightly's blocks.

    `(in, out, batch_norm, activation)` blocks; lightly gives a Linear a bias
    only where no BatchNorm follows it, as keras_simclr does.
    """
    from lightly.models.modules.heads import ProjectionHead
    from torch import nn

    return ProjectionHead([(dim, dim, nn.BatchNorm1d(dim), nn.ReLU()), (dim, PROJECTION_DIM, None, None)])


def build_simclr(args):
    """(model, criterion, optimizer) with lightly's parts; the model maps a view batch to z."""
    import torch
    from lightly.loss import NTXentLoss
    from lightly.utils.lars import LARS
    from torch import nn

    class SimCLR(nn.Module):  # as in lightly's SimCLR example
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.projection_head = projection_head(backbone.feature_dim)

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

    torch.manual_seed(args.seed)
    model = SimCLR(build_backbone(args.model, args.width_multiplier))
    # Weight decay and layer adaptation on the weights only (keras_simclr's
    # LARS excludes biases and BatchNorm parameters from both; lightly's
    # LARS adapts only the parameters with non-zero weight decay).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    peak = BASE_LEARNING_RATE * args.batch_size / 256
    optimizer = LARS([{"params": decay, "weight_decay": WEIGHT_DECAY},
                      {"params": no_decay, "weight_decay": 0.0}],  # no decay: no adaptation
                     lr=peak, momentum=MOMENTUM, trust_coefficient=0.001)
    return model, NTXentLoss(temperature=TEMPERATURE), optimizer, peak


def learning_rate_factor(step, warmup_steps, total_steps):
    """Keras `CosineDecay(0, decay_steps, warmup_target=peak, warmup_steps)` over the peak."""
    step = min(step, total_steps)
    if warmup_steps and step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_scheduler(optimizer, args, steps_per_epoch):
    import torch

    warmup, total = quality.schedule_steps(args, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup, total))


# ---------------------------------------------------------------- data


def simclr_transform():
    """lightly's SimCLR transform with the CIFAR recipe that equals keras_simclr's "cifar" preset."""
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(input_size=32, cj_prob=0.8, cj_strength=0.5, min_scale=0.08,
                           random_gray_scale=0.2, gaussian_blur=0.0, vf_prob=0.0, hf_prob=0.5,
                           rr_prob=0.0, normalize=None)


def decode_jpegs(jpegs):
    """Decodes JPEGs with Pillow in a thread pool into one uint8 `(N, H, W, 3)` array.

    The same decoder (Pillow) as `throughput.decode_pillow`, written out here
    so that this process imports neither Keras nor TensorFlow.
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
        ViewDataset(images, simclr_transform()), batch_size=args.batch_size, shuffle=True,
        drop_last=True, num_workers=workers, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed), pin_memory=args.device.startswith("cuda"))


def batches_forever(loader):
    while True:
        yield from loader


# ---------------------------------------------------------------- training


def make_step(model, criterion, optimizer, scheduler, args):
    """One SimCLR step on a pair of view batches; returns the loss (a float: synchronized)."""
    import torch

    device = torch.device(args.device)
    autocast = args.precision == "mixed_bfloat16"

    def step(views):
        x0, x1 = (v.to(device, non_blocking=True) for v in views)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            z0, z1 = model(x0), model(x1)  # as lightly's SimCLR example does
            loss = criterion(z0.float(), z1.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.item()  # waits for the step

    return step


def timed_steps(step, batches, args):
    """Runs `warmup_steps + steps` steps; returns throughput.py's timing fields."""
    model_losses, times = [], [time.perf_counter()]
    for _ in range(args.warmup_steps + args.steps):
        model_losses.append(step(next(batches)))
        times.append(time.perf_counter())
    return throughput.step_timings(times, model_losses[-1], args)


# ---------------------------------------------------------------- kNN


def weighted_knn_predict(train_features, train_labels, query_features, num_classes, k=200,
                         temperature=0.1, batch_size=512):
    """Weighted kNN (InstDisc eq. 7), the definition of keras_simclr's `weighted_knn_predict`.

    Features are L2-normalized; each query's `k` most cosine-similar
    training features vote for their class with weight
    `exp(similarity / temperature)`; the prediction is the class with the
    largest summed weight (the lowest class index on an exact tie). Each
    query's weights are scaled by `exp(-max similarity / temperature)`,
    which leaves the ranking unchanged.

    Args:
        train_features: `(N, F)` float tensor or array, the memory bank.
        train_labels: `(N,)` integer labels in `[0, num_classes)`.
        query_features: `(Q, F)`.
        num_classes: number of classes.
        k: neighbours, `1 <= k <= N`.
        temperature: vote temperature, `> 0`.
        batch_size: queries per chunk.

    Returns:
        an int64 `torch.Tensor` of `Q` predictions.
    """
    import torch
    import torch.nn.functional as F

    bank = F.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(train_labels, dtype=torch.int64, device=bank.device).reshape(-1)
    queries_all = torch.as_tensor(query_features, dtype=torch.float32, device=bank.device)
    if bank.ndim != 2 or queries_all.ndim != 2 or bank.shape[1] != queries_all.shape[1]:
        raise ValueError("train_features and query_features must be 2-D with the same width. "
                         f"Received: shapes {tuple(bank.shape)} and {tuple(queries_all.shape)}")
    if labels.shape[0] != bank.shape[0]:
        raise ValueError(f"train_labels must hold one label per training feature. Received: "
                         f"{labels.shape[0]} labels for {bank.shape[0]} features")
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must be between 1 and the number of training features ({bank.shape[0]}). "
                         f"Received: k={k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
    predictions = []
    for start in range(0, len(queries_all), batch_size):
        queries = F.normalize(queries_all[start:start + batch_size], dim=1)
        top, neighbours = (queries @ bank.T).topk(k, dim=1)  # sorted: top[:, 0] is the max
        weights = torch.exp((top - top[:, :1]) / temperature)
        scores = torch.zeros(len(queries), num_classes, dtype=torch.float32, device=bank.device)
        scores.scatter_add_(1, labels[neighbours], weights)
        predictions.append(scores.argmax(dim=1))  # the first maximum: the lowest class index
    return torch.cat(predictions)


def extract_features(backbone, images, args, batch_size=512):
    """Backbone features of uint8 images scaled to [0, 1] (no normalization), in eval mode."""
    import torch

    device = torch.device(args.device)
    backbone.eval()
    features = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                         enabled=args.precision == "mixed_bfloat16"):
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).to(device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            features.append(backbone(x).flatten(start_dim=1).float())
    backbone.train()
    return torch.cat(features)


# ---------------------------------------------------------------- reports


def environment(args):
    import lightly
    import numpy as np
    import torch
    import torchvision

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
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
        **{k: v for k, v in vars(args).items() if k not in ("output", "data")},
        "width_multiplier": args.width_multiplier or 1,
        "image_size": 32,
        "temperature": TEMPERATURE,
        "projection_dim": PROJECTION_DIM,
        "optimizer": "lightly.utils.lars.LARS",
        "weight_decay": WEIGHT_DECAY,
        "peak_learning_rate": BASE_LEARNING_RATE * args.batch_size / 256,
        "augmentation": "lightly.transforms.SimCLRTransform(input_size=32, cj_strength=0.5, min_scale=0.08, "
                        "gaussian_blur=0.0, normalize=None) in the DataLoader workers",
        "num_workers": os.cpu_count() if args.num_workers is None else args.num_workers,
    }


def run_throughput(args):
    import torch

    jpegs = throughput.read_jpegs(args.data, args.num_images)
    start = time.perf_counter()
    images = decode_jpegs(jpegs)
    decode_s = time.perf_counter() - start
    del jpegs

    model, criterion, optimizer, _ = build_simclr(args)
    model.to(args.device).train()
    step = make_step(model, criterion, optimizer, None, args)  # constant learning rate, as throughput.py
    loader = make_loader(images, args, seed=args.seed)
    # Step-only: one ready batch of views (made by the same transform), every step.
    ready = next(iter(torch.utils.data.DataLoader(ViewDataset(images, simclr_transform()),
                                                  batch_size=args.batch_size)))
    step_only = timed_steps(step, iter(lambda: ready, None), args)
    end_to_end = timed_steps(step, batches_forever(loader), args)
    result = {
        "command": shlex.join(["python"] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": environment(args),
        "implementation": "lightly",
        "config": {
            **common_config(args),
            "source_shape": list(images.shape[1:]),
            "step_only_feed": "one ready batch of two augmented views (made once by SimCLRTransform), "
                              "every step; the augmentation is not timed",
        },
        "decode_s": decode_s,
        "decode_images_per_s": len(images) / decode_s,
        "compile_s": step_only["first_step_s"],
        "step_only": step_only,
        "end_to_end": end_to_end,
        "ratio": end_to_end["images_per_s"] / step_only["images_per_s"],
        "peak_rss_mb": throughput.peak_rss_mb(),
        "accelerator_peak_mb": accelerator_peak_mb(args),
    }
    print(f"\nlightly {args.model} 32px batch {args.batch_size}, torch {args.device} {args.precision}, "
          f"{args.steps} timed steps after {args.warmup_steps}, {result['config']['num_workers']} workers")
    throughput.print_modes(result)
    print(f"ratio end_to_end / step_only: {result['ratio']:.3f}; first step: {result['compile_s']:.2f} s; "
          f"decode: {decode_s:.2f} s for {len(images)} images; peak RSS: {result['peak_rss_mb']:.0f} MB")
    throughput.warn_if_not_finite(result)
    return result


def run_quality(args):
    started = time.perf_counter()
    train_jpegs, train_labels = quality.read_split(args.data, "train", args.train_examples)
    test_jpegs, test_labels = quality.read_split(args.data, "test", args.eval_examples)
    start = time.perf_counter()
    train_images = decode_jpegs(train_jpegs)
    test_images = decode_jpegs(test_jpegs)
    decode_s = time.perf_counter() - start
    del train_jpegs, test_jpegs

    def evaluate(backbone):
        bank = extract_features(backbone, train_images, args)
        queries = extract_features(backbone, test_images, args)
        predictions = weighted_knn_predict(bank, train_labels, queries, 10, k=min(args.knn_k, len(bank)),
                                           temperature=args.knn_temperature).cpu().numpy()
        return float((predictions == test_labels).mean())

    steps_per_epoch = len(train_images) // args.batch_size
    model, criterion, optimizer, _ = build_simclr(args)
    model.to(args.device).train()
    scheduler = make_scheduler(optimizer, args, steps_per_epoch)
    step = make_step(model, criterion, optimizer, scheduler, args)
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
        record = {
            "epoch": epoch, "steps": steps, "complete": steps == steps_per_epoch, "train_s": epoch_s,
            "images_per_s": steps * args.batch_size / epoch_s if epoch_s else 0.0,
            "elapsed_train_s": train_s, "loss": loss_sum / max(steps, 1), "knn_accuracy": None, "knn_s": 0.0,
        }
        if stop or epoch == max_epochs or (args.knn_every and epoch % args.knn_every == 0):
            start = time.perf_counter()
            record["knn_accuracy"] = evaluate(model.backbone)
            record["knn_s"] = time.perf_counter() - start
        epochs.append(record)
        print(f"epoch {epoch}: {steps} steps in {epoch_s:.1f} s, loss {record['loss']:.4f}"
              + (f", kNN {record['knn_accuracy']:.4f} ({record['knn_s']:.1f} s)"
                 if record["knn_accuracy"] is not None else ""), flush=True)
        if stop:
            break
    fit_s = time.perf_counter() - fit_start
    warmup, total = quality.schedule_steps(args, steps_per_epoch)
    result = {
        "command": shlex.join(["python"] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": environment(args),
        "implementation": "lightly",
        "config": {**common_config(args), "warmup_steps": warmup, "total_steps": total},
        "decode_s": decode_s,
        **quality.summarize(epochs, args, steps_per_epoch, len(train_images), len(test_images)),
        "compile_s": first_step_s,
        "fit_s": fit_s,
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb": throughput.peak_rss_mb(),
        "accelerator_peak_mb": accelerator_peak_mb(args),
    }
    quality.print_report(result, f"lightly {args.model} (width {result['config']['width_multiplier']}) batch "
                                 f"{args.batch_size}, torch {args.device} {args.precision}, "
                                 f"{len(train_images)} training images, kNN on {len(test_images)} test images")
    return result


def main(argv=None):
    args = parse_args(argv)
    try:
        import lightly  # noqa: F401
        import torch
        import torchvision  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"lightly_reference.py needs torch, torchvision and lightly "
                         f"(pip install torch torchvision lightly). Received: {error}") from None
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    result = run_throughput(args) if args.mode == "throughput" else run_quality(args)
    throughput.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
