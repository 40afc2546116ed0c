"""Pretraining recipes: the papers' settings from a few choices.

A recipe turns what a user knows (the method, the image size, the batch size,
the number of epochs and training images) into a compiled model: encoder,
projection head, augmentation, loss temperature, optimizer and a warmup +
cosine learning-rate schedule, with each paper's defaults. The command line
(`keras-simclr pretrain`), the benchmarks and the examples all build their
models here, so a notebook gets exactly the CLI's training.

- `simclr`: a 2-layer head; LARS (weight decay 1e-6) at 0.3 x batch / 256;
  temperature 0.5 and the CIFAR augmentation for images up to 64 px, 0.1 and
  the ImageNet augmentation above.
- `simclr_v2`: as `simclr` with a 3-layer head.
- `moco_v2`: a 2-layer head, momentum encoder and queue; SGD (weight decay
  1e-4) at 0.03 x batch / 256; temperature 0.2; the MoCo v2 augmentation.

Warmup: 10% of the epochs, at most 10; then cosine decay to 0 at the last
step. Every default can be overridden by its argument.

Two ways to more negatives, both off by default: `micro_batch_size`
(gradient caching: a large batch encoded in chunks, the memory of one chunk;
every method) and, for `simclr` and `simclr_v2`, `memory_size` (SimCLR v2's
momentum memory of negatives).

References:
- [Chen et al., 2020a. A Simple Framework for Contrastive Learning of Visual
  Representations](https://arxiv.org/abs/2002.05709)
- [Chen et al., 2020b. Big Self-Supervised Models are Strong Semi-Supervised
  Learners](https://arxiv.org/abs/2006.10029)
- [Chen et al., 2020c. Improved Baselines with Momentum Contrastive
  Learning](https://arxiv.org/abs/2003.04297)
- [Gao et al., 2021. Scaling Deep Contrastive Learning Batch Size under
  Memory Limited Setup](https://arxiv.org/abs/2101.06983)
"""

from keras_simclr.recipes.choices import AUGMENTATIONS
from keras_simclr.recipes.choices import LEARNING_RATE_SCALINGS
from keras_simclr.recipes.choices import MEMORY_MOMENTUM
from keras_simclr.recipes.choices import METHODS
from keras_simclr.recipes.choices import OPTIMIZERS
from keras_simclr.recipes.choices import SMALL_IMAGE_SIZE
from keras_simclr.recipes.choices import resolve
from keras_simclr.recipes.choices import validate
from keras_simclr.recipes.recipe import Recipe
from keras_simclr.recipes.recipe import build
from keras_simclr.recipes.recipe import moco_v2
from keras_simclr.recipes.recipe import simclr
from keras_simclr.recipes.recipe import simclr_v2
from keras_simclr.recipes.schedules import learning_rate_for
from keras_simclr.recipes.schedules import warmup_cosine

__all__ = [
    "AUGMENTATIONS",
    "LEARNING_RATE_SCALINGS",
    "MEMORY_MOMENTUM",
    "METHODS",
    "OPTIMIZERS",
    "SMALL_IMAGE_SIZE",
    "Recipe",
    "build",
    "learning_rate_for",
    "moco_v2",
    "resolve",
    "simclr",
    "simclr_v2",
    "validate",
    "warmup_cosine",
]
