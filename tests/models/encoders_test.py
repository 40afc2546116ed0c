import pytest

from keras_simclr.models import create_encoder


def test_width_multiplier_none_keeps_the_named_width():
    assert create_encoder("resnet18_cifar", 32).width_multiplier == 1
    assert create_encoder("resnet18_cifar", 32, width_multiplier=0.125).feature_dim == 64


@pytest.mark.parametrize("width", [0, 0.0, -1, -0.5])
def test_refuses_a_width_multiplier_that_is_not_positive(width):
    # 0 used to mean "the default" silently.
    with pytest.raises(ValueError, match=rf"positive number.*Received: width_multiplier={width}"):
        create_encoder("resnet18_cifar", 32, width_multiplier=width)


def test_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="model='resnet9'"):
        create_encoder("resnet9", 32)
