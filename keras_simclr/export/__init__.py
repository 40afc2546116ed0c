"""Export of the encoder alone (SavedModel `serve` endpoint + .keras)."""

from keras_simclr.export.export_encoder import export_encoder
from keras_simclr.export.export_encoder import load_encoder
from keras_simclr.export.export_encoder import load_export_metadata

__all__ = ["export_encoder", "load_encoder", "load_export_metadata"]
