"""SimCLR pretraining quality: weighted kNN accuracy against training wall time.

Builds the model with `keras_simclr.recipes` (the CLI's SimCLR recipe), trains it with `fit` on
the CIFAR-10 JPEGs for `--epochs` epochs or `--seconds` of training, and reports weighted kNN
(k=200, T=0.1; training images as the bank, test images as queries) every `--knn_every` epochs
and at the end, with per-epoch training time apart from kNN time (README.md).

    python -m benchmarks.quality --backend tensorflow --epochs 10 --output q.json
    python -m benchmarks.quality --tiny --output /tmp/q.json   # the CI smoke test
"""

import argparse
import time

from benchmarks import common
from benchmarks import protocols


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    protocols.add_run_arguments(parser)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="CI mode: width 0.125, batch 16, 128 training and 64 test images, "
        "1 epoch (unless --epochs or --seconds is given)",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        protocols.apply_tiny(args)
    return protocols.check_run_arguments(parser, args)


def build_model(args, train_examples):
    """The CLI's SimCLR model and optimizer (`recipes.build`), no online probe; and its settings."""
    import keras

    from keras_simclr import recipes

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    # num_classes=None: no online probe, as in the lightly reference.
    recipe = recipes.build(
        "simclr",
        image_size=32,
        batch_size=args.batch_size,
        epochs=args.schedule_epochs,
        train_examples=train_examples,
        encoder=args.model,
        width_multiplier=args.width_multiplier,
        num_classes=None,
        seed=args.seed,
    )
    return recipe.model, recipe.settings


def training_batches(images, args):
    """Shuffled full batches, a new order every epoch (images only).

    TensorFlow: `tf.data` (`TFImageDataset`, imported from its module: the arrays loader gives the
    NumPy implementation); JAX: `keras_simclr.data.load_arrays`'s NumPy batches.
    """
    if args.backend == "tensorflow":
        from keras_simclr.data.tf_image_dataset import TFImageDataset

        batches = TFImageDataset.from_arrays(images).training_batches(
            args.batch_size, seed=args.seed
        )
        return batches.map(lambda x, y: x)  # the labels are not used
    from keras_simclr import data

    return data.load_arrays(images).training_batches(
        args.batch_size, seed=args.seed, repeat=True, workers=2, max_queue_size=2
    )


def make_clock(args, evaluate, max_epochs):
    """A callback that times the steps, stops after `--seconds` and runs kNN when due."""
    import keras

    class TrainingClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epochs, self.train_s, self.first_step_s = [], 0.0, None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = self.last_step = time.perf_counter()
            self.steps, self.loss = 0, float("nan")

        def on_train_batch_end(self, batch, logs=None):
            self.loss = float(logs["loss"])  # waits for the (asynchronously dispatched) step
            self.last_step = time.perf_counter()
            self.steps += 1
            if self.first_step_s is None:
                self.first_step_s = self.last_step - self.epoch_start
            if args.seconds and self.train_s + self.last_step - self.epoch_start >= args.seconds:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            train_s = self.last_step - self.epoch_start
            self.train_s += train_s
            protocols.close_epoch(
                self.epochs,
                args,
                epoch + 1,
                self.steps,
                self.steps == self.params["steps"],
                train_s,
                float(logs.get("loss", self.loss)),
                evaluate=lambda: evaluate(self.model.encoder),
                last=self.model.stop_training or epoch + 1 == max_epochs,
            )

    return TrainingClock()


def main(argv=None):
    args = parse_args(argv)
    common.select_backend(args.backend)
    started = time.perf_counter()

    from keras_simclr.models import ENCODERS

    if args.model not in ENCODERS:
        raise SystemExit(
            f"Unknown --model; known: {', '.join(sorted(ENCODERS))}. Received: {args.model!r}"
        )

    train_jpegs, train_labels = common.read_split(args.data, "train", args.train_examples)
    test_jpegs, test_labels = common.read_split(args.data, "test", args.eval_examples)
    decode = common.decode_tf if args.backend == "tensorflow" else common.decode_pillow
    start = time.perf_counter()
    train_images = decode(train_jpegs)
    test_images = decode(test_jpegs)
    decode_s = time.perf_counter() - start
    del train_jpegs, test_jpegs

    from keras_simclr.evaluation import extract_features
    from keras_simclr.evaluation import knn_accuracy

    def evaluate(encoder):
        bank = extract_features(encoder, train_images, batch_size=512)
        queries = extract_features(encoder, test_images, batch_size=512)
        return knn_accuracy(
            bank,
            train_labels,
            queries,
            test_labels,
            10,
            k=min(args.knn_k, len(bank)),
            temperature=args.knn_temperature,
        )

    steps_per_epoch = len(train_images) // args.batch_size
    model, settings = build_model(args, len(train_images))
    feed = training_batches(train_images, args)
    max_epochs = args.epochs or 10**6  # --seconds alone: until the time is up
    clock = make_clock(args, evaluate, max_epochs)
    fit_start = time.perf_counter()
    model.fit(
        feed,
        epochs=max_epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=0,
        shuffle=False,
        callbacks=[clock],
    )
    fit_s = time.perf_counter() - fit_start

    result = {
        **common.report_header(),
        "machine": common.keras_environment(),
        "implementation": "keras_simclr",
        "config": {
            **common.arguments_record(args),
            "width_multiplier": args.width_multiplier or ENCODERS[args.model][1],
            "image_size": 32,
            "augmentation": f"keras_simclr.augment.SimCLRAugmentation(preset="
            f"{settings['preset']!r}) inside the compiled step",
            "jit_compile": bool(model.jit_compile),
            **settings,
        },
        "decode_s": decode_s,
        **protocols.summarize(
            clock.epochs, args, steps_per_epoch, len(train_images), len(test_images)
        ),
        "compile_s": clock.first_step_s,
        "fit_s": fit_s,
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb": common.peak_rss_mb(),
        "accelerator_peak_mb": common.accelerator_peak_mb(),
    }
    protocols.print_report(
        result,
        f"keras_simclr {args.model} (width {result['config']['width_multiplier']}) batch "
        f"{args.batch_size}, {args.backend} {args.precision}, {len(train_images)} "
        f"training images, kNN on {len(test_images)} test images",
    )
    common.write_output(result, args.output)
    return result


if __name__ == "__main__":
    main()
