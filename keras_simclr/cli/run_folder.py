"""The files of a pretraining run's `--output_dir` (no Keras needed)."""

import csv
import json
import os

from keras_simclr.cli.errors import CLIError
from keras_simclr.cli.run_config import merge_resumed_flags

METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
CHECKPOINT = "checkpoint.keras"
PREVIOUS = "checkpoint.prev.keras"
CHECKPOINT_TMP = "checkpoint.tmp.keras"
# Two views of a few training images (written at the start), and the curves
# (rewritten after every epoch).
AUGMENTATIONS_FILE = "augmentations.png"
CURVES_FILE = "curves.png"


def checkpoint_files(directory):
    """The checkpoint generations on disk, newest first."""
    return [
        os.path.join(directory, name)
        for name in (CHECKPOINT, PREVIOUS)
        if os.path.exists(os.path.join(directory, name))
    ]


def remove_if_present(path):
    """Deletes the file at `path`; nothing if there is none."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def prepare_output_dir(output_dir):
    """Creates `output_dir`, or raises `CLIError` naming why it cannot be."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise CLIError(
            f"--output_dir must be a folder; {output_dir} exists and is a file. "
            f"Received: output_dir={output_dir!r}"
        )
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise CLIError(
            f"cannot create --output_dir {output_dir}: {error.strerror or error}"
        ) from None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def finished_result(output_dir, flags, saved):
    """The recorded metrics if this exact run already finished, else None."""
    if saved is None or not flags["resume"]:
        return None
    metrics = _read_json(os.path.join(output_dir, METRICS_FILE))
    if not isinstance(metrics, dict) or metrics.get("epochs") != flags["epochs"]:
        return None
    merge_resumed_flags(saved["flags"], flags)  # raises on changed settings
    return metrics


def fresh_start(output_dir):
    """Removes what an earlier run left that a new one would mix with."""
    for name in (CHECKPOINT, PREVIOUS, CHECKPOINT_TMP, METRICS_FILE, LOG_FILE, CURVES_FILE):
        remove_if_present(os.path.join(output_dir, name))


def log_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def truncate_log(path, completed_epochs):
    """Drops the log rows of epochs after the checkpoint (they are trained again)."""
    rows = log_rows(path)
    kept = [row for row in rows if int(row["epoch"]) < completed_epochs]
    if len(kept) == len(rows):
        return
    with open(path, "w", newline="") as f:
        if kept:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)


def write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)
