"""
Title: SimCLR on CIFAR-10 with keras-simclr
Author: keras-simclr developers
Description: Self-supervised contrastive pretraining of a ResNet-18 on CIFAR-10
images, watched with a weighted kNN monitor, then a look at what it learned.
Accelerator: GPU or TPU (runs on CPU in its small-steps mode)

Run it on an image folder laid out as `ROOT/{train,test}/<class>/*.jpg`
(`python ../shared/data/extract.py ../shared/data/cifar10_jpeg.npz /tmp/cifar10`
writes one):

    python examples/simclr_cifar10.py --image_folder /tmp/cifar10 --epochs 100

`--small_steps` trains a narrow network on a few hundred images for 2 epochs,
so the whole script runs in about a minute on a CPU.
"""

"""
## Introduction

SimCLR (Chen et al., 2020) learns image features without labels: two random
views of every image are encoded, projected, and a contrastive loss (NT-Xent)
pulls the two views of the same image together while pushing every other
image in the batch away. The encoder's features are then judged by how well
a k-nearest-neighbour classifier does with them on labelled data.
"""

"""
## Setup
"""

import argparse
import os

import keras_simclr as ks  # isort: skip

# Before Keras imports TensorFlow, which reads the setting once: TensorFlow's
# oneDNN CPU kernels (up to 2x faster on CPUs where TensorFlow leaves them off).
ks.enable_onednn()
import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_simclr import data

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--image_folder", required=True)
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--batch_size", type=int, default=512)
parser.add_argument("--output_dir", default="simclr_cifar10_output")
parser.add_argument("--small_steps", action="store_true")
args = parser.parse_args()

keras.utils.set_random_seed(0)
width = 1.0
train_examples = None
if args.small_steps:
    args.epochs, args.batch_size, width, train_examples = 2, 64, 0.125, 256
os.makedirs(args.output_dir, exist_ok=True)

"""
## The data

The training split is the unlabelled pretraining set and the kNN memory bank;
the test split holds the kNN queries. Images stay uint8 until the model's own
augmentation layers turn them into float32 views in [0, 1].
"""

train = data.load_image_folder(args.image_folder, "train")
test = data.load_image_folder(args.image_folder, "test")
if train_examples:
    train, test = train.take(train_examples), test.take(train_examples)
train, test = train.cache(), test.cache()  # decode the JPEGs once
print(f"{train.num_examples} training images of {train.image_size}, {train.num_classes} classes")

"""
## The model and its training recipe

`ks.recipes.simclr` builds what the command line trains: a ResNet-18 with the
CIFAR stem (3x3 convolution, no max-pool), a two-layer projection head, the
CIFAR augmentation preset (random resized crop, horizontal flip, color
distortion of strength 0.5, no blur), NT-Xent at temperature 0.5, and LARS
with a linear warmup and cosine decay. SimCLR's learning rate is 0.3 x batch
/ 256; CIFAR likes it higher, so this example raises the base to 1.0 and
warms up for one epoch.
"""

recipe = ks.recipes.simclr(
    image_size=32,
    batch_size=args.batch_size,
    epochs=args.epochs,
    train_examples=train.num_examples,
    encoder="resnet18_cifar",
    width_multiplier=width,
    learning_rate=1.0,
    warmup_epochs=1,
)
model = recipe.model
print("recipe:", recipe.settings)

"""
## Training

A `KNNMonitor` measures the features after every epoch: weighted kNN on the
test split, with the training split as the memory bank.
"""

knn = ks.evaluation.KNNMonitor(
    train_data=train.evaluation_batches(512),
    test_data=test.evaluation_batches(512),
    num_classes=train.num_classes,
    k=200,
    temperature=0.1,
)
history = model.fit(
    train.training_batches(args.batch_size, seed=0),
    epochs=args.epochs,
    shuffle=False,  # the batches are reshuffled every epoch already
    callbacks=[knn, ks.evaluation.CollapseAlarm()],
)

"""
## What it learned

The loss falls as the two views of each image become each other's nearest
neighbour; the kNN accuracy on the test split rises from the random-init
value (about 0.35 on this data) as the features learn the classes.
"""

figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(range(1, args.epochs + 1), history.history["loss"])
left.set(title="NT-Xent loss", xlabel="epoch")
right.plot(range(1, args.epochs + 1), history.history["knn_accuracy"])
right.set(title="weighted kNN accuracy (k=200)", xlabel="epoch")
figure.tight_layout()
figure.savefig(os.path.join(args.output_dir, "training.png"))
print(f"final kNN accuracy: {history.history['knn_accuracy'][-1]:.4f}")

"""
## Reuse the encoder

The encoder alone, without the projection head, is what downstream tasks use.
"""

model.encoder.save(os.path.join(args.output_dir, "encoder.keras"))
