"""`keras-simclr`: the command-line entry point.

    keras-simclr pretrain --image_folder DIR --output_dir runs/x [flags]
    keras-simclr pretrain --dataset cifar10 --output_dir runs/x [flags]
    keras-simclr linear_eval --encoder runs/x/encoder --image_folder DIR
    keras-simclr finetune --encoder runs/x/encoder --image_folder DIR --label_fraction 0.1
    keras-simclr embed --encoder runs/x/encoder --image_folder DIR --output embeddings.parquet

`keras-simclr SUBCOMMAND --helpfull` lists a subcommand's flags.

TensorFlow's oneDNN CPU kernels are on (`TF_ENABLE_ONEDNN_OPTS=1`, set here
before the subcommand imports TensorFlow) unless the environment sets
`TF_ENABLE_ONEDNN_OPTS` itself; `TF_ENABLE_ONEDNN_OPTS=0` keeps TensorFlow's
Eigen kernels. See `keras_simclr.onednn`.

TensorFlow's and absl's INFO log lines are off (the console shows Keras's
progress bar and the subcommand's own lines) unless `--verbose 2`.
"""

import importlib
import logging
import os
import sys

from keras_simclr.onednn import enable_onednn

# subcommand: (module, function)
SUBCOMMANDS = {
    "pretrain": ("keras_simclr.cli.pretrain", "main"),
    "linear_eval": ("keras_simclr.cli.evaluate", "main_linear_eval"),
    "finetune": ("keras_simclr.cli.evaluate", "main_finetune"),
    "embed": ("keras_simclr.cli.embed", "main"),
}


def _usage():
    names = ", ".join(sorted(SUBCOMMANDS))
    return f"usage: keras-simclr SUBCOMMAND [--flags]  (subcommands: {names})"


def verbose_level(args):
    """The `--verbose` value among a subcommand's arguments (1, its default, when absent)."""
    for index, arg in enumerate(args):
        if arg.startswith("--verbose="):
            value = arg.split("=", 1)[1]
        elif arg == "--verbose" and index + 1 < len(args):
            value = args[index + 1]
        else:
            continue
        try:
            return int(value)
        except ValueError:
            return 1  # absl reports the bad value when it parses the flags
    return 1


def _quiet_logs():
    """TensorFlow's and absl's INFO lines off: the console keeps Keras's progress and our lines.

    TensorFlow's C++ log level must be set before TensorFlow is imported (a
    value in the environment wins); its Python logger and absl's take a level.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def run(argv=None):
    """Dispatches `keras-simclr SUBCOMMAND ...` to the subcommand's absl app."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(__doc__.strip() + "\n\n" + _usage())
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(f"keras-simclr: unknown subcommand {name!r}. {_usage()}", file=sys.stderr)
        return 2
    module_name, function = SUBCOMMANDS[name]
    quiet = verbose_level(argv[2:]) < 2
    if quiet:
        _quiet_logs()
    if "tensorflow" not in sys.modules:  # e.g. run() called from a test: too late
        enable_onednn()
    module = importlib.import_module(module_name)
    from absl import app
    from absl import logging as absl_logging

    def main(args):
        if quiet:  # after absl parsed its own --verbosity
            absl_logging.set_verbosity(absl_logging.WARNING)
        return getattr(module, function)(args)

    # Only the chosen subcommand's flags are defined in this process.
    module.define_flags()
    app.run(main, argv=[f"keras-simclr {name}"] + argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(run())
