"""lightly's SimCLR in PyTorch, matched to keras_simclr's recipe: backbone, head, loss, LARS, step.

torchvision's ResNet with the CIFAR stem, a Linear-BN-ReLU-Linear head from lightly's blocks,
`lightly.loss.NTXentLoss(0.5)` and `lightly.utils.lars.LARS` with keras_simclr's warmup + cosine
plan; benchmarks/README.md lists where they differ from ours. torch is imported where used.
"""

import math

from benchmarks import protocols

# name: (torchvision constructor, block kind, blocks per stage)
MODELS = {
    "resnet18_cifar": ("resnet18", "basic", (2, 2, 2, 2)),
    "resnet34_cifar": ("resnet34", "basic", (3, 4, 6, 3)),
    "resnet50_cifar": ("resnet50", "bottleneck", (3, 4, 6, 3)),
}
BASE_LEARNING_RATE = 0.3  # keras_simclr.recipes' simclr: LARS, linear scaling
WEIGHT_DECAY = 1e-6
MOMENTUM = 0.9
TEMPERATURE = 0.5  # NT-Xent, CIFAR-size images
PROJECTION_DIM = 128


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
        net = _scaled_resnet(
            resnet.BasicBlock if kind == "basic" else resnet.Bottleneck, blocks, width
        )
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
                raise ValueError(
                    f"--width_multiplier is too small. Received: width_multiplier={width}"
                )
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

    return ProjectionHead(
        [(dim, dim, nn.BatchNorm1d(dim), nn.ReLU()), (dim, PROJECTION_DIM, None, None)]
    )


def build_simclr(args):
    """(model, criterion, optimizer, peak learning rate) with lightly's parts; model: views -> z."""
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
    optimizer = LARS(
        [
            {"params": decay, "weight_decay": WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],  # no decay: no adaptation
        lr=peak,
        momentum=MOMENTUM,
        trust_coefficient=0.001,
    )
    return model, NTXentLoss(temperature=TEMPERATURE), optimizer, peak


def learning_rate_factor(step, warmup_steps, total_steps):
    """Keras `CosineDecay(0, decay_steps, warmup_target=peak, warmup_steps)` over the peak."""
    step = min(step, total_steps)
    if warmup_steps and step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_scheduler(optimizer, args, steps_per_epoch):
    """The warmup + cosine plan of `protocols.schedule_steps`, stepped every step."""
    import torch

    warmup, total = protocols.schedule_steps(args, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup, total)
    )


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
