"""
Title: SimCLR in Colab: pretrain, watch, export and probe an encoder
Author: keras-simclr developers
Description: Self-supervised SimCLR pretraining on CIFAR-10 with keras-simclr, from
installation to a linear probe on the exported encoder, on a Colab TPU, GPU or CPU.
Accelerator: GPU
"""

"""
SimCLR (Chen et al., 2020) learns image features without labels: two random
views of every image go through one encoder and a projection head, and a
contrastive loss (NT-Xent) pulls the two views of each image together while
pushing the other images of the batch away. Labels come back only to judge
the features: a weighted kNN classifier during training, a linear classifier
on the frozen encoder at the end.

This notebook runs top to bottom in Colab (Runtime > Change runtime type
picks a TPU, a GPU or the CPU). The file it is generated from,
`examples/simclr_colab.py`, runs as a script too. With the environment
variable `KERAS_SIMCLR_SMALL_STEPS=1` everything shrinks (a narrow network,
256 images, one epoch) so that it runs in about a minute on a CPU: that is
how the tests run it.
"""

"""
## Setup

In Colab, install keras-simclr first (elsewhere this cell does nothing: install
it with `pip install keras-simclr`).
"""

import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("keras_simclr") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "keras-simclr"], check=True)

"""
`keras_simclr.enable_onednn()` turns on TensorFlow's oneDNN CPU kernels (up to
2x faster on CPUs where TensorFlow leaves them off). TensorFlow reads the
setting once, when it is imported, so it comes before `import keras`.
"""

import keras_simclr as ks  # isort: skip

ks.enable_onednn()

"""
The other imports, and the size of the run: the whole of CIFAR-10, or with
`KERAS_SIMCLR_SMALL_STEPS=1` a narrow network on 256 images for one epoch.
"""

import io
import os
import socket

import keras
import numpy as np
from PIL import Image

SMALL_STEPS = os.environ.get("KERAS_SIMCLR_SMALL_STEPS") == "1"
if SMALL_STEPS:  # about a minute on a CPU
    WIDTH, TRAIN_IMAGES, TEST_IMAGES = 0.125, 256, 256
    EPOCHS, BATCH_SIZE, PROBE_EPOCHS = 1, 64, 2
else:  # ResNet-18 on all of CIFAR-10
    WIDTH, TRAIN_IMAGES, TEST_IMAGES = 1.0, None, None
    EPOCHS, BATCH_SIZE, PROBE_EPOCHS = 25, 512, 30
keras.utils.set_random_seed(0)

"""
## The accelerator

`ks.distribute.resolve_strategy` returns what to train under: a `TPUStrategy`
on a Colab TPU (`tpu=""`), a `MirroredStrategy` over several GPUs, else the
default strategy (one GPU, or the CPU). Asking for a TPU where there is none
raises at once, and we fall back to whatever else is there.
"""

try:
    strategy = ks.distribute.resolve_strategy(tpu="")
except (ValueError, RuntimeError):  # no TPU here
    strategy = ks.distribute.resolve_strategy()
replicas = ks.distribute.replicas_of(strategy)
print(f"{type(strategy).__name__} on the {keras.config.backend()} backend: {replicas} replica(s)")

"""
## The data

CIFAR-10 from TensorFlow Datasets, downloaded on first use. Without network
access (or with `KERAS_SIMCLR_DATA` set) the notebook reads the same images
from `cifar10_jpeg.npz` in that folder instead (default `../shared/data`),
the JPEGs the keras-simclr tests use. Either way the result is a
`keras_simclr.data.ImageDataset` of uint8 images and their labels: the
training split is the unlabelled pretraining set (and the kNN memory bank),
the test split holds the kNN and linear-probe queries.
"""

DATA_DIR = os.environ.get("KERAS_SIMCLR_DATA", os.path.join("..", "shared", "data"))


def network_is_up(host="www.cs.toronto.edu", port=443, timeout=3):
    """Whether CIFAR-10's download host answers (tfds retries for minutes if not)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_shared_cifar10(split, count):
    """`count` CIFAR-10 images of `split` from `DATA_DIR/cifar10_jpeg.npz`."""
    archive = np.load(os.path.join(DATA_DIR, "cifar10_jpeg.npz"))
    offsets, blob = archive[f"{split}_offsets"], archive[f"{split}_bytes"]
    labels = archive[f"{split}_labels"]
    # The archive is sorted by class: a fixed shuffle mixes the classes.
    order = np.random.default_rng(0).permutation(len(labels))[:count]
    images = np.stack(
        [
            np.asarray(
                Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())).convert("RGB")
            )
            for i in order
        ]
    )
    class_names = [str(name) for name in archive["classes"]]
    return ks.data.load_arrays(images, labels[order].astype("int32"), class_names)


if "KERAS_SIMCLR_DATA" not in os.environ and network_is_up():
    train = ks.data.load_tfds("cifar10", "train" + (f"[:{TRAIN_IMAGES}]" if SMALL_STEPS else ""))
    test = ks.data.load_tfds("cifar10", "test" + (f"[:{TEST_IMAGES}]" if SMALL_STEPS else ""))
    source = "tfds"
else:
    train = load_shared_cifar10("train", TRAIN_IMAGES)
    test = load_shared_cifar10("test", TEST_IMAGES)
    source = os.path.join(DATA_DIR, "cifar10_jpeg.npz")
train, test = train.cache(), test.cache()
print(
    f"{train.num_examples} training and {test.num_examples} test images of "
    f"{train.image_size}, {train.num_classes} classes, from {source}"
)

"""
## The model and its recipe

`ks.recipes.simclr` builds what the `keras-simclr pretrain` command trains: a
ResNet-18 with the CIFAR stem (3x3 convolution, no max-pool), a two-layer
projection head, the CIFAR augmentation preset (random resized crop,
horizontal flip, color distortion of strength 0.5), NT-Xent at temperature
0.5, and LARS with a linear warmup and a cosine decay. Built inside the
strategy's scope, its variables live on the accelerator, and with several
replicas BatchNorm normalizes over the global batch.
"""

with strategy.scope():
    recipe = ks.recipes.simclr(
        image_size=train.image_size[0],
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        train_examples=train.num_examples,
        encoder="resnet18_cifar",
        width_multiplier=WIDTH,
        learning_rate=1.0,
        warmup_epochs=1,
        sync_batchnorm=replicas > 1,
    )
model = recipe.model
print("recipe:", recipe.settings)

"""
## What the model sees

Each training step draws two random views of every image with the recipe's
own augmenter, exactly as below: the model learns to tell that the two views
in a column come from the same image, and from no other image of the batch.
"""

images, labels = train.take(8).arrays()
ks.plot.augmentation_grid(images, recipe.augmenter)

"""
## Training

A `KNNMonitor` measures the features after every epoch: the weighted kNN
accuracy (k=200) on the test split, with the training split as the memory
bank. The same measure on the randomly initialized encoder, before training,
is the number to beat.
"""

knn = ks.evaluation.KNNMonitor(
    train_data=train.evaluation_batches(512),
    test_data=test.evaluation_batches(512),
    num_classes=train.num_classes,
    k=200,
    temperature=0.1,
)
knn_at_init = ks.evaluation.evaluate_knn(
    model, train.evaluation_batches(512), test.evaluation_batches(512), train.num_classes
)
print(f"kNN accuracy of the random encoder: {knn_at_init:.4f}")
history = model.fit(
    train.training_batches(BATCH_SIZE, seed=0),
    epochs=EPOCHS,
    shuffle=False,  # the batches are reshuffled every epoch already
    callbacks=[knn],
)
print(f"kNN accuracy after {EPOCHS} epoch(s): {knn.results[EPOCHS]:.4f}")

"""
## The curves

The loss falls as the two views of each image become each other's nearest
neighbours (the contrastive accuracy counts how often that is so in a batch);
the kNN accuracy rises above the random encoder's (the dotted line) as the
features come to separate the classes.
"""

ks.plot.training_curves(history, knn_at_init=knn_at_init)

"""
## Export and reload the encoder

`ks.export.export_encoder` writes the encoder alone, without the projection
head, as a SavedModel (with a `.keras` copy) whose `serve` endpoint maps
float32 images in [0, 1] to features. `ks.export.load_encoder` reloads it as a
Keras layer; it computes the same features as the trained encoder.
"""

ks.export.export_encoder(model, "simclr_encoder")
reloaded = ks.export.load_encoder("simclr_encoder")

unit_images = images.astype("float32") / 255.0
features = keras.ops.convert_to_numpy(reloaded(unit_images))
expected = model.encoder.predict(unit_images, verbose=0)
np.testing.assert_allclose(features, expected, atol=1e-5)
print(
    f"reloaded encoder: {features.shape[1]} features per image, "
    f"max difference from the trained encoder {np.abs(features - expected).max():.2e}"
)

"""
## Linear probe

The linear evaluation protocol: a linear classifier trained on the frozen
features of the labelled training images, scored on the test images. Here it
runs on the reloaded export, as a downstream user would.
"""

inputs = keras.Input((*train.image_size, 3))
frozen_encoder = keras.Model(inputs, reloaded(inputs))
probe = ks.evaluation.linear_evaluation(
    frozen_encoder,
    train.arrays(),
    test.arrays(),
    num_classes=train.num_classes,
    epochs=PROBE_EPOCHS,
    augment=False,
)
print(f"linear probe test accuracy: {probe['top1']:.4f} (top-5 {probe['top5']:.4f})")

"""
## Next steps

- Train longer: SimCLR's CIFAR-10 results use hundreds of epochs; the kNN
  curve shows when it flattens.
- The command line trains the same recipe from any image folder, resumes
  after interruptions and writes these pictures as it goes:
  `keras-simclr pretrain --image_folder DIR --output_dir runs/cifar10`.
- The exported encoder reloads without keras-simclr:
  `keras.layers.TFSMLayer("simclr_encoder", call_endpoint="serve")`.
"""
