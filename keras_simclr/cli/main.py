"""`keras-simclr`: the command-line entry point.

    keras-simclr pretrain --image_folder DIR --output_dir runs/x [flags]
    keras-simclr pretrain --dataset cifar10 --output_dir runs/x [flags]

`keras-simclr SUBCOMMAND --helpfull` lists a subcommand's flags.
"""

import importlib
import sys

SUBCOMMANDS = {
    "pretrain": "keras_simclr.cli.pretrain",
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
    module = importlib.import_module(SUBCOMMANDS[name])
    from absl import app

    # Only the chosen subcommand's flags are defined in this process.
    app.run(module.main, argv=[f"keras-simclr {name}"] + argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(run())
