import keras
import numpy as np
import pytest

from keras_simclr.evaluation.frozen_variables import frozen_variables


def _encoder():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="encoder")


def test_a_model_holding_the_frozen_layer_trains_only_its_own_variables():
    encoder = _encoder()
    encoder.get_layer("bn").trainable = False  # frozen beforehand: stays frozen
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(encoder(inputs)))
    before = [w.copy() for w in encoder.get_weights()]
    layer_flags = [layer.trainable for layer in encoder.layers]
    variable_flags = [v.trainable for v in encoder.variables]
    assert len(model.trainable_weights) == 4  # conv and head kernels and biases
    with frozen_variables(encoder) as frozen:
        assert frozen is encoder
        assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
        model.compile(optimizer=keras.optimizers.SGD(0.1, weight_decay=0.5), loss="mse")
        model.fit(np.ones((8, 6, 6, 3)), np.ones((8, 2)), epochs=2, verbose=0)
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Layer flags were never touched; every variable got its own flag back.
    assert [layer.trainable for layer in encoder.layers] == layer_flags
    assert [v.trainable for v in encoder.variables] == variable_flags
    assert len(model.trainable_weights) == 4


def test_flags_are_restored_when_the_block_raises():
    encoder = _encoder()
    with pytest.raises(RuntimeError):
        with frozen_variables(encoder):
            assert not encoder.trainable_weights
            raise RuntimeError("stop")
    assert len(encoder.trainable_weights) == 4  # conv kernel and bias, bn gamma and beta
