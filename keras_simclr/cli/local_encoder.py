"""A one-device copy of the encoder for kNN and the export under a strategy.

Under a strategy with several replicas, `predict_on_batch` (what kNN feature
extraction calls) runs every image batch on every replica and returns their
concatenation (twice the rows on two replicas), and a SavedModel export would
trace the replicated variables. The kNN monitor and the export use a copy
built outside any distribution, whose weights are refreshed before each use.
"""

from keras_simclr import distribute
from keras_simclr.evaluation import KNNMonitor


def local_encoder(config, image_size):
    """The `--model` encoder built outside any distribution (weights copied in later)."""
    from keras_simclr.models import create_encoder

    with distribute.no_distribution():
        return create_encoder(
            config["model"], image_size, width_multiplier=config["width_multiplier"]
        )


def copy_encoder_weights(model, local):
    """`local` <- `model.encoder`'s weights (on every worker: reading may be collective)."""
    weights = model.encoder.get_weights()
    with distribute.no_distribution():
        if not local.built:
            local.build((None,) + tuple(model.encoder.input_shape[1:]))
        local.set_weights(weights)
    return local


class LocalEncoderKNN(KNNMonitor):
    """A `KNNMonitor` of a one-device copy of the encoder, refreshed before each evaluation."""

    def evaluate(self):
        copy_encoder_weights(self.model, self.encoder)
        with distribute.no_distribution():
            return super().evaluate()
