"""Optimizers. Learning-rate warmup and cosine decay come from
`keras.optimizers.schedules.CosineDecay(warmup_target=..., warmup_steps=...)`."""

from keras_simclr.optimizers.lars import LARS

__all__ = ["LARS"]
