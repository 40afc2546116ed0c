import keras
import numpy as np
import pytest

from keras_simclr.models import ProjectionHead


def test_structure_and_shapes():
    head = ProjectionHead(num_layers=3, hidden_dim=None, output_dim=16)
    out = head(np.random.normal(size=(4, 32)).astype("float32"))
    assert tuple(out.shape) == (4, 16)
    # hidden_dim=None keeps the input width; only the last layer has a bias.
    assert [tuple(d.kernel.shape) for d in head.dense_layers] == [(32, 32), (32, 32), (32, 16)]
    assert [d.use_bias for d in head.dense_layers] == [False, False, True]
    assert len(head.norm_layers) == 2
    assert tuple(head(np.zeros((2, 32), "float32"), num_layers=1).shape) == (2, 32)


def test_matches_numpy_forward_in_training_mode():
    head = ProjectionHead(num_layers=2, hidden_dim=8, output_dim=4)
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    out = keras.ops.convert_to_numpy(head(x, training=True))
    w1 = keras.ops.convert_to_numpy(head.dense_layers[0].kernel)
    w2 = keras.ops.convert_to_numpy(head.dense_layers[1].kernel)
    b2 = keras.ops.convert_to_numpy(head.dense_layers[1].bias)
    a = x @ w1
    a = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)  # BN, gamma 1, beta 0
    expected = np.maximum(a, 0) @ w2 + b2
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="num_layers=0"):
        ProjectionHead(num_layers=0)
    with pytest.raises(ValueError, match="input_shape"):
        ProjectionHead()(np.zeros((2, 3, 4), "float32"))


def test_config_round_trip_and_keras_file(tmp_path):
    head = ProjectionHead(num_layers=3, hidden_dim=12, output_dim=6, sync_batchnorm=True)
    config = head.get_config()
    assert ProjectionHead.from_config(config).get_config() == config
    inputs = keras.Input((10,))
    model = keras.Model(inputs, head(inputs))
    path = str(tmp_path / "head.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.normal(size=(3, 10)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )


def test_batch_statistics_outside_training_match_training_without_updates():
    head = ProjectionHead(num_layers=3, hidden_dim=8, output_dim=4)
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    head(x)  # build
    for norm in head.norm_layers:  # moving averages far from this batch's
        norm.moving_mean.assign(np.full(8, 3.0, "float32"))
        norm.moving_variance.assign(np.full(8, 0.01, "float32"))
        norm.gamma.assign(np.linspace(0.5, 1.5, 8).astype("float32"))
        norm.beta.assign(np.linspace(-0.2, 0.2, 8).astype("float32"))
    before = [keras.ops.convert_to_numpy(v) for v in head.non_trainable_variables]
    got = keras.ops.convert_to_numpy(head(x, training=False, batch_statistics=True))
    after = [keras.ops.convert_to_numpy(v) for v in head.non_trainable_variables]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    inference = keras.ops.convert_to_numpy(head(x, training=False))
    assert np.abs(got - inference).max() > 0.5 * np.abs(got).max() > 0
    training = keras.ops.convert_to_numpy(head(x, training=True))
    np.testing.assert_allclose(got, training, rtol=1e-4, atol=1e-5)


def test_truncated_output_shape_is_the_shape_of_the_first_layers():
    head = ProjectionHead(num_layers=3, hidden_dim=12, output_dim=6)
    x = np.random.default_rng(2).normal(size=(4, 10)).astype("float32")
    # Not built yet: the shapes come from the configuration.
    expected = [head.truncated_output_shape((4, 10), k) for k in range(4)]
    assert expected == [(4, 10), (4, 12), (4, 12), (4, 6)]
    for k in range(1, 4):
        assert tuple(head(x, num_layers=k).shape) == expected[k]
    assert ProjectionHead(num_layers=2).truncated_output_shape((None, 7), 1) == (None, 7)
    with pytest.raises(ValueError, match="num_layers=4"):
        head.truncated_output_shape((4, 10), 4)
