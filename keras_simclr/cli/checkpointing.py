"""Epoch checkpoints that a killed run resumes from, and a throughput meter."""

import json
import os
import time

import keras

CHECKPOINT = "checkpoint.keras"
STATE = "checkpoint.json"


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (weights and optimizer state) after every epoch.

    The `.keras` file is written to a temporary name and renamed into place,
    and `checkpoint.json` (the completed epoch count) is renamed into place
    after it, so a run killed at any moment leaves the last completed epoch
    intact. `load_checkpoint` reads it back.

    Args:
        directory: where `checkpoint.keras` and `checkpoint.json` go.
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.directory, CHECKPOINT)
        self.model.save(path + ".tmp.keras")
        os.replace(path + ".tmp.keras", path)
        state = {
            "epoch": epoch + 1,
            "optimizer_iterations": int(
                keras.ops.convert_to_numpy(self.model.optimizer.iterations)
            ),
        }
        with open(os.path.join(self.directory, STATE + ".tmp"), "w") as f:
            json.dump(state, f)
        os.replace(
            os.path.join(self.directory, STATE + ".tmp"),
            os.path.join(self.directory, STATE),
        )


def load_checkpoint(directory):
    """Returns `(model, completed_epochs)` from `directory`, or `None`."""
    state_path = os.path.join(directory, STATE)
    if not os.path.exists(state_path):
        return None
    with open(state_path) as f:
        state = json.load(f)
    model = keras.saving.load_model(os.path.join(directory, CHECKPOINT))
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if iterations != state["optimizer_iterations"]:
        raise ValueError(
            f"The checkpoint in {directory} is inconsistent: its optimizer ran "
            f"{iterations} steps, {STATE} says {state['optimizer_iterations']}."
        )
    return model, int(state["epoch"])


class Throughput(keras.callbacks.Callback):
    """Training images per second, measured per epoch (kNN time excluded).

    Place it before the evaluation callbacks: its `on_epoch_end` stops the
    clock before they run. The first epoch of a run includes compilation, so
    `images_per_second` reports the later epochs when there are any.

    Args:
        images_per_epoch: images one epoch trains on.
    """

    def __init__(self, images_per_epoch):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        if logs is not None:
            logs["images_per_second"] = self.images_per_epoch / seconds

    def images_per_second(self):
        if not self.epoch_seconds:
            return 0.0
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.images_per_epoch * len(steady) / sum(steady)
