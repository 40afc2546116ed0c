"""
Title: SimCLR v2 distillation on CIFAR-10 with keras-simclr
Author: keras-simclr developers
Description: Fine-tune a teacher on 10% of the CIFAR-10 labels, then distill it
into a student on every training image, and compare with the same student
trained on the 10% labels alone.
Accelerator: GPU or TPU (runs on CPU in its small-steps mode)

Run it on an image folder laid out as `ROOT/{train,test}/<class>/*.jpg`
(`python ../shared/data/extract.py ../shared/data/cifar10_jpeg.npz /tmp/cifar10`
writes one), with an encoder exported by `keras_simclr.export.export_encoder`
after SimCLR pretraining (see `examples/simclr_cifar10.py`):

    python examples/simclr_v2_distillation.py --image_folder /tmp/cifar10 \\
        --encoder runs/encoder --epochs 100

Without `--encoder` the teacher starts from a random initialization (it is then
simply a supervised model of the labelled 10%). `--small_steps` trains narrow
networks on a couple of hundred images for one epoch, so the whole script runs
in a few minutes on a CPU.
"""

"""
## Introduction

SimCLR v2 (Chen et al., 2020) learns from few labels in three steps:

1. pretrain a big encoder without labels (SimCLR);
2. fine-tune it on the labelled fraction: this is the *teacher*;
3. *distill*: a student learns the teacher's predicted class distribution on
   every training image, labelled or not (eq. 3 of the paper):
   `-sum_y P_T(y | x; T) log P_S(y | x; T)`.

The unlabelled images are used twice: task-agnostically by pretraining, and
task-specifically by distillation. Here we compare two students of the same
architecture, trained for the same number of epochs: one on the labelled
10% alone, one distilled from the teacher on all training images.
"""

"""
## Setup
"""

import argparse
import json
import os

import keras_simclr as ks  # isort: skip

# Before Keras imports TensorFlow, which reads the setting once: TensorFlow's
# oneDNN CPU kernels (up to 2x faster on CPUs where TensorFlow leaves them off).
ks.enable_onednn()
import keras

from keras_simclr import data
from keras_simclr.models.distillation_model import DistillationModel

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--image_folder", required=True)
parser.add_argument("--encoder", default=None, help="an export_encoder directory")
parser.add_argument("--label_fraction", type=float, default=0.1)
parser.add_argument("--teacher_epochs", type=int, default=60)
parser.add_argument("--epochs", type=int, default=100, help="epochs of each student")
parser.add_argument("--batch_size", type=int, default=256)
parser.add_argument("--learning_rate", type=float, default=0.1)
parser.add_argument("--teacher_learning_rate", type=float, default=0.01)
parser.add_argument("--temperature", type=float, default=1.0)
parser.add_argument("--student_depth", type=int, default=18)
parser.add_argument("--student_width", type=float, default=1.0)
parser.add_argument("--output_dir", default="simclr_v2_distillation_output")
parser.add_argument("--small_steps", action="store_true")
args = parser.parse_args()

keras.utils.set_random_seed(0)
max_examples = None
if args.small_steps:
    args.teacher_epochs, args.epochs, args.batch_size = 1, 1, 32
    args.student_width, max_examples = 0.125, 200
os.makedirs(args.output_dir, exist_ok=True)

"""
## The data

All training images are the distillation set; a per-class balanced 10% of
them, with their labels, is the labelled set. The test split measures every
model. Images stay uint8 until the models turn them into floats in [0, 1].
"""

train = data.load_image_folder(args.image_folder, "train")
test = data.load_image_folder(args.image_folder, "test", image_size=train.image_size)
if max_examples:
    train, test = train.take(max_examples), test.take(max_examples)
train, test = train.in_memory(), test.in_memory()  # decoded once, as NumPy arrays
x_train, y_train = train.arrays()
x_test, y_test = test.arrays()
num_classes = train.num_classes
# A per-class balanced fraction, e.g. 10%: SimCLR's semi-supervised split.
x_labelled, y_labelled = train.subset(args.label_fraction, seed=0).arrays()
print(
    f"{len(x_train)} training images ({len(x_labelled)} labelled), "
    f"{len(x_test)} test images of {train.image_size}, {num_classes} classes"
)
image_shape = tuple(train.image_size) + (3,)


def student_encoder():
    """The students' backbone: a ResNet with the CIFAR stem, random init."""
    return ks.models.ResNet(
        depth=args.student_depth,
        width_multiplier=args.student_width,
        cifar_stem=True,
        input_shape=image_shape,
    )


"""
## The teacher: fine-tuned on the labelled 10%

`fine_tune` trains a copy of the encoder and a linear classifier on the
labelled images (random crop and flip, cosine decay) and returns the model,
images to logits.
"""

if args.encoder:
    exported_size = ks.export.load_export_metadata(args.encoder)["image_size"]
    if tuple(exported_size) != tuple(train.image_size):
        raise ValueError(
            f"The encoder was exported for {tuple(exported_size)} images; the "
            f"folder holds {tuple(train.image_size)} images. "
            f"Received: --encoder={args.encoder}"
        )
    encoder = ks.export.load_encoder(args.encoder, trainable=True, format="keras")
else:
    print("No --encoder: the teacher starts from a random initialization.")
    encoder = student_encoder()
teacher_result = ks.evaluation.fine_tune(
    encoder,
    (x_labelled, y_labelled),
    (x_test, y_test),
    num_classes,
    epochs=args.teacher_epochs,
    batch_size=min(args.batch_size, len(x_labelled)),
    learning_rate=args.teacher_learning_rate,
    seed=0,
)
teacher = teacher_result["model"]
print(f"teacher test accuracy: {teacher_result['top1']:.4f}")

"""
## Student (a): the labelled 10% alone

The baseline: the student's architecture trained from scratch on the
labelled images with the same recipe (`fine_tune` of a random-init encoder).
"""

supervised = ks.evaluation.fine_tune(
    student_encoder(),
    (x_labelled, y_labelled),
    (x_test, y_test),
    num_classes,
    epochs=args.epochs,
    batch_size=min(args.batch_size, len(x_labelled)),
    learning_rate=args.learning_rate,
    seed=1,
)
print(f"supervised student test accuracy: {supervised['top1']:.4f}")

"""
## Student (b): distilled from the teacher on every training image

The same architecture, the same number of epochs. `DistillationModel` draws
one random crop (with a flip) of each image, lets the frozen teacher label
it with its softmax at the temperature, and trains the student on those
soft labels. No label is used for training (`alpha=0`); the test labels give
the validation accuracy.
"""

student = keras.Sequential(
    [
        keras.Input(image_shape),
        student_encoder(),
        keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=1),
            name="classifier",
        ),
    ],
    name="student",
)
distiller = DistillationModel(
    teacher=teacher,
    student=student,
    temperature=args.temperature,
    augmenter=ks.augment.RandomResizedCrop(
        image_shape[0], image_shape[1], scale=(0.25, 1.0), horizontal_flip=True, seed=0
    ),
)
batch_size = min(args.batch_size, len(x_train))
steps = args.epochs * -(-len(x_train) // batch_size)
distiller.compile(
    optimizer=keras.optimizers.SGD(
        keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps),
        momentum=0.9,
        nesterov=True,
    )
)
history = distiller.fit(
    x_train,
    batch_size=batch_size,
    epochs=args.epochs,
    shuffle=True,
    validation_data=(x_test, y_test),
)
distilled = distiller.evaluate(x_test, y_test, batch_size=512, return_dict=True, verbose=0)
print(f"distilled student test accuracy: {distilled['accuracy']:.4f}")
print(f"distilled student agreement with the teacher: {distilled['teacher_agreement']:.4f}")

"""
## Results

With a pretrained teacher, the distilled student beats the one trained on
the labelled images alone: it learns from ten times as many images, labelled
by a model that knows the classes. From a random-init teacher there is little
to transfer.
"""

results = {
    "label_fraction": args.label_fraction,
    "num_train": int(len(x_train)),
    "num_labelled": int(len(x_labelled)),
    "num_test": int(len(x_test)),
    "encoder": args.encoder,
    "epochs": args.epochs,
    "temperature": args.temperature,
    "teacher_accuracy": teacher_result["top1"],
    "supervised_student_accuracy": supervised["top1"],
    "distilled_student_accuracy": float(distilled["accuracy"]),
    "distilled_teacher_agreement": float(distilled["teacher_agreement"]),
    "distillation_loss": [float(v) for v in history.history["loss"]],
}
# The student alone (images to logits) is the model to deploy.
student.save(os.path.join(args.output_dir, "student.keras"))
with open(os.path.join(args.output_dir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps({k: v for k, v in results.items() if "accuracy" in k}, indent=2))
