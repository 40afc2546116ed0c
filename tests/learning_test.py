"""SimCLR pretraining learns: on real CIFAR-10 JPEGs, kNN accuracy rises above the random encoder's.

The test pretrains the CLI's recipe (`recipes.build("simclr", ...)`: LARS, warmup + cosine, NT-Xent,
the CIFAR augmentation) at width 0.125 on 1,000 CIFAR-10 training images (100 per class, extracted
as an image folder) for 15 epochs of batch 64 (225 steps; base learning rate 4.8, i.e. 1.2 at batch
64: the default 0.3 learns too slowly for so few steps), and evaluates weighted kNN (k=200, T=0.1;
the 1,000 training images are the bank, 1,000 test images the queries) of

- the random initial encoder as built (what `keras-simclr pretrain` reports as
  `knn_accuracy_at_init`), and
- the same random encoder with its BatchNorm moving statistics re-estimated on the training images,
  weights untouched. A new encoder's moving statistics are 0 and 1; re-estimating them alone
  raises kNN accuracy by 0.007-0.078 here, so a run whose weights learned nothing could still beat
  the first baseline. Beating the second shows that the weights learned.

Measured with `pretrain_and_evaluate` (2026-12-01, TensorFlow 2.21 CPU, oneDNN), seeds 0-4:

| seed | at init | at init, BatchNorm statistics | trained | gain | gain over statistics |
| ---: | ---: | ---: | ---: | ---: | ---: |
| 0 | 0.184 | 0.237 | 0.306 | 0.122 | 0.069 |
| 1 | 0.207 | 0.220 | 0.290 | 0.083 | 0.070 |
| 2 | 0.227 | 0.234 | 0.297 | 0.070 | 0.063 |
| 3 | 0.187 | 0.260 | 0.294 | 0.107 | 0.034 |
| 4 | 0.185 | 0.263 | 0.306 | 0.121 | 0.043 |

Noise: the five random encoders score 0.184-0.227 (standard deviation 0.019; two of them differ
by 0.043 at most), 0.220-0.263 with their statistics re-estimated. The test asserts seeds 0 and 1
(the first two; one seed costs about 70 CPU seconds) with margins `MARGIN = 0.05` over the random
encoder (above the largest difference between two random encoders, below the smallest gain, 0.070)
and `MARGIN_OVER_STATISTICS = 0.02` (below the smallest gain over statistics, 0.034).
A control run of seed 0 at learning rate 1e-9 (its BatchNorm statistics still follow the
augmented views) ends at 0.242: 0.058 over the random encoder, which passes `MARGIN` alone, but
0.005 over statistics, which fails `MARGIN_OVER_STATISTICS`. The whole test took 157 CPU seconds.
"""

import keras
import pytest

from keras_simclr import data
from keras_simclr import recipes
from keras_simclr.evaluation import evaluate_knn
from tests.conftest import extract_folder

WIDTH = 0.125
PER_CLASS = 100
BATCH_SIZE = 64
EPOCHS = 15
BASE_LEARNING_RATE = 4.8
K = 200
CALIBRATION_BATCHES = 30
SEEDS = (0, 1)
MARGIN = 0.05
MARGIN_OVER_STATISTICS = 0.02


@pytest.fixture(scope="module")
def cifar_1000(tmp_path_factory):
    """1,000 training and 1,000 test CIFAR-10 JPEGs, 100 per class, decoded once."""
    root = extract_folder(tmp_path_factory, "cifar10_learning", PER_CLASS)
    train = data.load_image_folder(root, "train").cache()
    test = data.load_image_folder(root, "test").cache()
    return train, train.arrays(), test.arrays()


def _knn(encoder, train_arrays, test_arrays):
    return evaluate_knn(encoder, train_arrays, test_arrays, 10, k=K, batch_size=500)


def _with_batchnorm_statistics(encoder, images):
    """A copy of `encoder` whose BatchNorm moving statistics are re-estimated on `images`.

    Forward passes in training mode over `CALIBRATION_BATCHES` batches (momentum 0.9: the initial
    statistics keep a weight of 0.9**30 < 5%); no weight is changed.
    """
    copy = keras.models.clone_model(encoder)
    copy.set_weights(encoder.get_weights())
    for i in range(CALIBRATION_BATCHES):
        start = (i * BATCH_SIZE) % (len(images) - BATCH_SIZE)
        copy(images[start : start + BATCH_SIZE].astype("float32") / 255.0, training=True)
    return copy


def pretrain_and_evaluate(seed, train, train_arrays, test_arrays):
    """kNN accuracy of the random encoder, of it with BatchNorm statistics, and after pretraining.

    Returns:
        `(at_init, at_init_with_statistics, trained)`, Python floats.
    """
    keras.utils.set_random_seed(seed)
    recipe = recipes.build(
        "simclr",
        image_size=32,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        train_examples=train.num_examples,
        width_multiplier=WIDTH,
        learning_rate=BASE_LEARNING_RATE,
        seed=seed,
    )
    encoder = recipe.model.encoder
    at_init = _knn(encoder, train_arrays, test_arrays)
    calibrated = _with_batchnorm_statistics(encoder, train_arrays[0])
    at_init_with_statistics = _knn(calibrated, train_arrays, test_arrays)
    recipe.model.fit(
        train.training_batches(BATCH_SIZE, seed=seed),
        epochs=EPOCHS,
        steps_per_epoch=train.num_examples // BATCH_SIZE,
        verbose=0,
        shuffle=False,  # training_batches reshuffles every epoch
    )
    return at_init, at_init_with_statistics, _knn(encoder, train_arrays, test_arrays)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_pretraining_beats_the_random_encoder(seed, cifar_1000):
    at_init, at_init_with_statistics, trained = pretrain_and_evaluate(seed, *cifar_1000)
    assert trained >= at_init + MARGIN, (
        f"seed {seed}: kNN accuracy {trained:.3f} after pretraining, {at_init:.3f} at "
        f"initialisation; expected a gain of at least {MARGIN}"
    )
    assert trained >= at_init_with_statistics + MARGIN_OVER_STATISTICS, (
        f"seed {seed}: kNN accuracy {trained:.3f} after pretraining, {at_init_with_statistics:.3f} "
        f"for the random encoder with re-estimated BatchNorm statistics; expected a gain of at "
        f"least {MARGIN_OVER_STATISTICS}"
    )
