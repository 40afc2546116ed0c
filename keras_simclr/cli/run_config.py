"""`config.json`: the run's configuration, and what a resume may change."""

import json
import os

from keras_simclr.cli.errors import CLIError

CONFIG_FILE = "config.json"

# Flags that never change what is trained: a resume may give new values.
# `epochs` is handled apart (it may only grow).
NOT_TRAINING = frozenset(
    {
        "epochs",
        "output_dir",
        "resume",
        "verbose",
        "knn_every",
        "knn_k",
        "knn_temperature",
        "steps_per_execution",
        "tpu",
        "collective_timeout",
    }
)


def read_run_config(directory):
    """The saved `config.json` of `directory` as a dict, or `None` if absent.

    Raises:
        CLIError: the file exists but is not a JSON object with `flags`.
    """
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as error:
        raise CLIError(
            f"cannot read the run configuration {path} ({error}); pass "
            "--noresume to start the run over"
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("flags"), dict):
        raise CLIError(
            f"the run configuration {path} has no 'flags' entry; pass --noresume "
            "to start the run over"
        )
    return saved


def write_run_config(directory, flags, resolved):
    """Writes `config.json` atomically: the flags as given and what they resolved to."""
    path = os.path.join(directory, CONFIG_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({"flags": flags, "resolved": resolved}, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def merge_resumed_flags(saved_flags, flags):
    """The flags a resumed run trains with, or `CLIError` listing every conflict.

    A flag given as `None` (not set) takes its saved value. `--epochs` may
    grow (the schedule is planned again for the new total); any other change
    to a flag that alters training is refused, naming each flag with its old
    and new value and the two ways out.

    Args:
        saved_flags: `config.json`'s `flags`.
        flags: this run's flags.

    Returns:
        the merged flags.
    """
    merged = dict(flags)
    changed = []
    for name in sorted(set(saved_flags) | set(flags)):
        if name in NOT_TRAINING:
            continue
        old, new = saved_flags.get(name), flags.get(name)
        if new is None:
            merged[name] = old
        elif old != new:
            changed.append((name, old, new))
    old_epochs, new_epochs = saved_flags.get("epochs"), flags["epochs"]
    if new_epochs < old_epochs:
        changed.append(("epochs", old_epochs, new_epochs))
    if changed:
        listed = ", ".join(f"--{name} {_shown(old)} -> {_shown(new)}" for name, old, new in changed)
        raise CLIError(
            f"the run in {flags['output_dir']} was started with other settings: {listed}. "
            "A resume may only raise "
            "--epochs. Pass --noresume to start over with the new settings, or give "
            "the old values to resume"
        )
    return merged


def _shown(value):
    return "unset" if value is None else repr(value)
