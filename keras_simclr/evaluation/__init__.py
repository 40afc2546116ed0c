"""Evaluation: kNN, linear evaluation, and training monitors."""

from keras_simclr.evaluation.collapse_alarm import CollapseAlarm
from keras_simclr.evaluation.non_finite_loss_guard import NonFiniteLossError
from keras_simclr.evaluation.non_finite_loss_guard import NonFiniteLossGuard

__all__ = ["CollapseAlarm", "NonFiniteLossError", "NonFiniteLossGuard"]
