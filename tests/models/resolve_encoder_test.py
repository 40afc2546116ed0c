import keras
import pytest

from keras_simclr.models import ContrastiveModel
from keras_simclr.models import ProjectionHead
from keras_simclr.models.resolve_encoder import resolve_encoder


def _encoder():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


def test_a_model_with_an_encoder_gives_it_and_an_encoder_is_kept():
    encoder = _encoder()
    model = ContrastiveModel(encoder=encoder, projection_head=ProjectionHead(output_dim=4))
    assert resolve_encoder(model) is encoder
    assert resolve_encoder(encoder) is encoder


def test_anything_else_is_refused_naming_the_caller_and_the_type():
    with pytest.raises(ValueError, match="export_encoder takes.*Received: str"):
        resolve_encoder("encoder", caller="export_encoder")

    class NotAModel:
        encoder = "not a keras.Model"

    with pytest.raises(ValueError, match="Received: NotAModel"):
        resolve_encoder(NotAModel())
