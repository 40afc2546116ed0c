import keras
import numpy as np
from keras import ops

from keras_simclr.utils.tensors import compatible_shapes
from keras_simclr.utils.tensors import l2_normalize
from keras_simclr.utils.tensors import static_shape


def test_l2_normalize_gives_float32_unit_rows_and_keeps_zero_rows():
    z = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], "float16")
    out = ops.convert_to_numpy(l2_normalize(z))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-3)


def test_l2_normalize_has_a_finite_gradient_at_a_zero_row():
    import tensorflow as tf

    z = tf.Variable(np.zeros((1, 3), "float32"))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(l2_normalize(z))
    # d(z * rsqrt(1e-24))/dz: the rsqrt factor, where z / norm(z) gives nan.
    np.testing.assert_allclose(tape.gradient(total, z).numpy(), np.full((1, 3), 1e12), rtol=1e-6)


def test_static_shape_and_compatible_shapes():
    assert static_shape(np.zeros((2, 5))) == (2, 5)
    assert static_shape(keras.KerasTensor((None, 5))) == (None, 5)
    assert compatible_shapes((None, 5), (8, 5))
    assert not compatible_shapes((8, 5), (8, 6))
    assert not compatible_shapes((8, 5), (8, 5, 1))
