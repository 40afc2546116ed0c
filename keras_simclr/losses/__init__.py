"""Contrastive losses."""

from keras_simclr.losses.nt_xent import NTXent
from keras_simclr.losses.nt_xent import contrastive_accuracy
from keras_simclr.losses.nt_xent import nt_xent_loss

__all__ = ["NTXent", "contrastive_accuracy", "nt_xent_loss"]
