"""Fault injection for the command line's failure tests.

`KERAS_SIMCLR_FAULTS` holds comma-separated `POINT@EPOCH` (or
`POINT@EPOCH:STEP`) entries; at that point of that epoch the process does
what the point names, exactly as a real failure would:

- `kill@E:S`: SIGKILL itself after step S of epoch E (1-based).
- `checkpoint_written@E`: SIGKILL after epoch E's checkpoint is written to
  its temporary file, before it is renamed into place.
- `checkpoint_rotated@E`: SIGKILL after the old checkpoint became
  `checkpoint.prev.keras`, before the new one is in place.
- `nan_weights@E`: at the start of epoch E, set the encoder's first kernel to
  NaN (the first step's loss is NaN).
- `inf_batchnorm@E`: at the start of epoch E, set the encoder's first
  BatchNorm moving variance to inf (the loss stays finite; the state does
  not).

Unset (as for every user) it does nothing.
"""

import os
import signal

import keras
import numpy as np

ENV = "KERAS_SIMCLR_FAULTS"


def _faults():
    entries = {}
    for entry in filter(None, os.environ.get(ENV, "").split(",")):
        point, _, where = entry.strip().partition("@")
        entries[point] = where
    return entries


def _matches(where, epoch, step=None):
    wanted_epoch, _, wanted_step = where.partition(":")
    if int(wanted_epoch) != epoch:
        return False
    return step is None or (wanted_step != "" and int(wanted_step) == step)


def maybe_kill(point, epoch, step=None):
    """SIGKILLs this process if `point` is injected at `epoch` (and `step`)."""
    where = _faults().get(point)
    if where is not None and _matches(where, epoch, step):
        os.kill(os.getpid(), signal.SIGKILL)


def _first_variable(model, suffix):
    for variable in model.encoder.variables:
        if variable.path.endswith(suffix):
            return variable
    raise ValueError(f"no encoder variable ending in {suffix!r}")


class FaultInjection(keras.callbacks.Callback):
    """Applies the step and epoch faults of `KERAS_SIMCLR_FAULTS` (see module)."""

    def __init__(self):
        super().__init__()
        self.faults = _faults()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        for point, suffix, value in (
            ("nan_weights", "kernel", np.nan),
            ("inf_batchnorm", "moving_variance", np.inf),
        ):
            where = self.faults.get(point)
            if where is not None and _matches(where, self._epoch):
                variable = _first_variable(self.model, suffix)
                variable.assign(np.full(variable.shape, value, variable.dtype))

    def on_train_batch_end(self, batch, logs=None):
        if "kill" in self.faults:
            maybe_kill("kill", self._epoch, batch + 1)
