"""`keras-simclr`: the command-line entry point.

    keras-simclr pretrain --image_folder DIR --output_dir runs/x [flags]
    keras-simclr pretrain --dataset cifar10 --output_dir runs/x [flags]
    keras-simclr linear_eval --encoder runs/x/encoder --image_folder DIR
    keras-simclr finetune --encoder runs/x/encoder --image_folder DIR --label_fraction 0.1

`keras-simclr SUBCOMMAND --helpfull` lists a subcommand's flags.

TensorFlow's oneDNN CPU kernels are on (`TF_ENABLE_ONEDNN_OPTS=1`, set here
before the subcommand imports TensorFlow) unless the environment sets
`TF_ENABLE_ONEDNN_OPTS` itself; `TF_ENABLE_ONEDNN_OPTS=0` keeps TensorFlow's
Eigen kernels. See `keras_simclr.onednn`.
"""

import importlib
import sys

from keras_simclr.onednn import enable_onednn

# subcommand: (module, function)
SUBCOMMANDS = {
    "pretrain": ("keras_simclr.cli.pretrain", "main"),
    "linear_eval": ("keras_simclr.cli.evaluate", "main_linear_eval"),
    "finetune": ("keras_simclr.cli.evaluate", "main_finetune"),
}


def _usage():
    names = ", ".join(sorted(SUBCOMMANDS))
    return f"usage: keras-simclr SUBCOMMAND [--flags]  (subcommands: {names})"


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
    if "tensorflow" not in sys.modules:  # e.g. run() called from a test: too late
        enable_onednn()
    module = importlib.import_module(module_name)
    from absl import app

    # Only the chosen subcommand's flags are defined in this process.
    module.define_flags()
    app.run(getattr(module, function), argv=[f"keras-simclr {name}"] + argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(run())
