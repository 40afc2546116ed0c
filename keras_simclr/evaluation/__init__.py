"""Evaluation: weighted kNN, training monitors, linear evaluation, fine-tuning."""

from keras_simclr.evaluation.collapse_alarm import CollapseAlarm
from keras_simclr.evaluation.features import extract_features
from keras_simclr.evaluation.fine_tune import fine_tune
from keras_simclr.evaluation.knn import evaluate_knn
from keras_simclr.evaluation.knn import knn_accuracy
from keras_simclr.evaluation.knn import weighted_knn_predict
from keras_simclr.evaluation.knn_monitor import KNNMonitor
from keras_simclr.evaluation.linear_eval import linear_evaluation
from keras_simclr.evaluation.non_finite_loss_guard import NonFiniteLossError
from keras_simclr.evaluation.non_finite_loss_guard import NonFiniteLossGuard

__all__ = [
    "CollapseAlarm",
    "KNNMonitor",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "evaluate_knn",
    "extract_features",
    "fine_tune",
    "knn_accuracy",
    "linear_evaluation",
    "weighted_knn_predict",
]
