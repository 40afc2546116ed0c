"""evaluation.forward: one row per image, whatever strategy the model was built under."""

import gc

import keras
import numpy as np
import tensorflow as tf

from keras_simclr.evaluation import forward


def _model():
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization()(keras.layers.Dense(3)(inputs))
    return keras.Model(inputs, x)


def test_single_device_is_predict_on_batch():
    model = _model()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(forward.predict_batch(model, x), model.predict_on_batch(x))
    assert model not in forward._CROSS_REPLICA_FORWARDS
    np.testing.assert_array_equal(
        forward.predict_in_batches(model, x, 2), model.predict_on_batch(x)
    )
    # No JAX distribution here: every batch "splits", and fit's context is a no-op.
    assert forward.batches_split_evenly(4, num_examples=7)
    with forward.distribution_for_fit(False):
        assert keras.distribution.distribution() is None


def test_model_built_under_a_strategy_runs_outside_the_replica_context():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = _model()
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(forward.predict_batch(model, x), expected, rtol=1e-6)
    np.testing.assert_allclose(forward.predict_batch(model, x[:3]), expected[:3], rtol=1e-6)
    assert model in forward._CROSS_REPLICA_FORWARDS
    # Also for a model built outside, called inside the scope.
    plain = _model()
    with strategy.scope():
        out = forward.predict_batch(plain, x)
    assert out.shape == (5, 3) and plain in forward._CROSS_REPLICA_FORWARDS
    # The cached function does not keep its model alive.
    count = len(forward._CROSS_REPLICA_FORWARDS)
    del model, plain
    gc.collect()
    assert len(forward._CROSS_REPLICA_FORWARDS) == count - 2
