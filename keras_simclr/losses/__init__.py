"""Contrastive losses."""

from keras_simclr.losses.distillation import DistillationLoss
from keras_simclr.losses.distillation import distillation_loss
from keras_simclr.losses.info_nce import info_nce_logits
from keras_simclr.losses.info_nce import info_nce_loss
from keras_simclr.losses.nt_xent import NTXent
from keras_simclr.losses.nt_xent import contrastive_accuracy
from keras_simclr.losses.nt_xent import nt_xent_loss

__all__ = [
    "DistillationLoss",
    "NTXent",
    "contrastive_accuracy",
    "distillation_loss",
    "info_nce_logits",
    "info_nce_loss",
    "nt_xent_loss",
]
