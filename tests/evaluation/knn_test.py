"""Weighted kNN against a brute-force NumPy oracle; feature extraction."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.evaluation import evaluate_knn
from keras_simclr.evaluation import extract_features
from keras_simclr.evaluation import knn_accuracy
from keras_simclr.evaluation import weighted_knn_predict
from keras_simclr.models import ResNet


def brute_force_knn(bank, bank_labels, queries, num_classes, k, temperature):
    """One query at a time: sort similarities, take the top k, sum exp(s/T) per class."""
    bank = np.asarray(bank, "float64")
    queries = np.asarray(queries, "float64")
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    scores = np.zeros((len(queries), num_classes))
    for q, query in enumerate(queries):
        query = query / np.linalg.norm(query)
        similarity = bank @ query
        order = np.argsort(-similarity, kind="stable")[:k]
        for j in order:
            scores[q, bank_labels[j]] += np.exp(similarity[j] / temperature)
    return scores


def _random_problem(seed, n=120, q=37, dim=16, num_classes=5):
    rng = np.random.default_rng(seed)
    bank = rng.normal(size=(n, dim)).astype("float32")
    labels = rng.integers(0, num_classes, size=n)
    queries = rng.normal(size=(q, dim)).astype("float32")
    return bank, labels, queries, num_classes


def _max_similarity(bank, queries):
    bank = np.asarray(bank, "float64")
    queries = np.asarray(queries, "float64")
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return (queries @ bank.T).max(axis=1)


@pytest.mark.parametrize(
    "k, temperature",
    [(1, 0.1), (5, 0.07), (20, 0.1), (50, 0.5), (120, 1.0)],
)
def test_matches_brute_force(k, temperature):
    bank, labels, queries, num_classes = _random_problem(seed=k)
    # Features of any scale: normalization happens inside.
    bank *= np.random.default_rng(1).uniform(0.1, 10.0, size=(len(bank), 1)).astype("float32")
    predictions, scores = weighted_knn_predict(
        bank, labels, queries, num_classes, k=k, temperature=temperature, return_scores=True
    )
    expected = brute_force_knn(bank, labels, queries, num_classes, k, temperature)
    assert predictions.shape == (len(queries),)
    assert scores.shape == (len(queries), num_classes)
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(predictions, expected.argmax(axis=1))
    np.testing.assert_array_equal(predictions, scores.argmax(axis=1))
    # Without return_scores: the predictions alone.
    np.testing.assert_array_equal(
        weighted_knn_predict(bank, labels, queries, num_classes, k=k, temperature=temperature),
        predictions,
    )
    # Proportional per query: each query's scores are scaled by
    # exp(-s_max / T), s_max its highest similarity.
    s_max = _max_similarity(bank, queries)[:, None]
    np.testing.assert_allclose(
        scores * np.exp(s_max / temperature), expected, rtol=1e-4, atol=1e-30
    )
    for row, expected_row in zip(scores, expected):
        nonzero = expected_row > 0
        ratios = row[nonzero] / expected_row[nonzero]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-4)
    # The nearest neighbour's weight is exp(0) = 1: the top score is >= 1.
    assert np.all(scores.max(axis=1) >= 1.0 - 1e-6)
    if k == 1:
        np.testing.assert_array_equal((scores > 0).sum(axis=1), np.ones(len(queries)))


def test_batched_equals_unbatched():
    bank, labels, queries, num_classes = _random_problem(seed=3, q=50)
    whole_predictions, whole = weighted_knn_predict(
        bank, labels, queries, num_classes, k=15, temperature=0.1, return_scores=True
    )
    batched_predictions, batched = weighted_knn_predict(
        bank, labels, queries, num_classes, k=15, temperature=0.1, batch_size=7, return_scores=True
    )
    # Float32 matrix products of other shapes: equal up to rounding.
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(batched_predictions, whole_predictions)


def test_small_temperature_keeps_the_nearest_neighbour():
    # Query at cosine 0.8 from a class-1 item and -0.6 from a class-0 item.
    bank = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    labels = np.array([0, 1])
    query = np.array([[-0.6, 0.8]], "float32")
    for temperature in (0.1, 0.01, 0.001):
        predictions, scores = weighted_knn_predict(
            bank, labels, query, 2, k=2, temperature=temperature, return_scores=True
        )
        assert predictions[0] == 1, (temperature, scores)
        assert scores[0, 1] == pytest.approx(1.0)
        assert scores[0, 0] == pytest.approx(np.exp(-1.4 / temperature), rel=1e-3, abs=1e-30)
    # Random problem: at T -> 0 the nearest neighbour decides.
    bank, labels, queries, num_classes = _random_problem(seed=4)
    predictions = weighted_knn_predict(bank, labels, queries, num_classes, k=10, temperature=0.001)
    nearest = brute_force_knn(bank, labels, queries, num_classes, 1, 1.0).argmax(axis=1)
    np.testing.assert_array_equal(predictions, nearest)


def test_separable_toy_set_is_perfect():
    rng = np.random.default_rng(0)
    centers = np.eye(4, 8) * 10.0
    bank_labels = np.repeat(np.arange(4), 30)
    bank = centers[bank_labels] + rng.normal(scale=0.3, size=(120, 8))
    query_labels = np.repeat(np.arange(4), 10)
    queries = centers[query_labels] + rng.normal(scale=0.3, size=(40, 8))
    assert knn_accuracy(bank, bank_labels, queries, query_labels, 4, k=20) == 1.0
    # And shuffled labels give chance-level accuracy, not 1.0.
    shuffled = rng.permutation(bank_labels)
    assert knn_accuracy(bank, shuffled, queries, query_labels, 4, k=20) < 0.7


def test_argument_errors():
    bank, labels, queries, num_classes = _random_problem(seed=5, n=30)
    with pytest.raises(ValueError, match="k=31"):
        weighted_knn_predict(bank, labels, queries, num_classes, k=31)
    with pytest.raises(ValueError, match="k=0"):
        weighted_knn_predict(bank, labels, queries, num_classes, k=0)
    with pytest.raises(ValueError, match="temperature=0"):
        weighted_knn_predict(bank, labels, queries, num_classes, k=3, temperature=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        weighted_knn_predict(bank, labels, queries, 3, k=3)  # labels go up to 4
    # k equal to the bank size is allowed.
    assert weighted_knn_predict(bank, labels, queries, num_classes, k=30).shape == (37,)


@pytest.fixture(scope="module")
def small_encoder():
    keras.utils.set_random_seed(0)
    encoder = ResNet(depth=18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    # Non-trivial BatchNorm statistics, so inference mode matters.
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.1, "float32"))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 2.0, "float32"))
    return encoder


def test_extract_features_arrays_and_dataset_agree(small_encoder, cifar_images):
    images, labels = cifar_images
    images, labels = images[:40], labels[:40]
    from_arrays, labels_a = extract_features(small_encoder, (images, labels), batch_size=16)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(12)
    from_dataset, labels_d = extract_features(small_encoder, dataset)
    assert from_arrays.shape == (40, 64) and from_arrays.dtype == np.float32
    np.testing.assert_allclose(from_dataset, from_arrays, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels_a, labels)
    np.testing.assert_array_equal(labels_d, labels)
    # Images without labels: the features alone.
    alone = extract_features(small_encoder, images, batch_size=7)
    np.testing.assert_allclose(alone, from_arrays, rtol=1e-5, atol=1e-5)
    # uint8 images are scaled to [0, 1]; float images pass as they are.
    expected = keras.ops.convert_to_numpy(
        small_encoder(images.astype("float32") / 255.0, training=False)
    )
    np.testing.assert_allclose(from_arrays, expected, rtol=1e-5, atol=1e-5)
    from_floats, _ = extract_features(small_encoder, (images.astype("float32") / 255.0, labels))
    np.testing.assert_allclose(from_floats, expected, rtol=1e-5, atol=1e-5)


def test_evaluate_knn_equals_knn_on_extracted_features(small_encoder, cifar_images):
    images, labels = cifar_images
    train, test = (images[:96], labels[:96]), (images[96:128], labels[96:128])
    accuracy = evaluate_knn(small_encoder, train, test, num_classes=10, k=200, temperature=0.1)
    bank, bank_labels = extract_features(small_encoder, train)
    queries, query_labels = extract_features(small_encoder, test)
    assert bank.shape == (96, 64) and queries.shape == (32, 64)
    scores = brute_force_knn(bank, bank_labels, queries, 10, 96, 0.1)  # k capped at 96
    assert accuracy == pytest.approx(np.mean(scores.argmax(axis=1) == query_labels))
    assert 0.0 <= accuracy <= 1.0


def test_extract_features_refuses_float_images_in_0_255(small_encoder, cifar_images):
    images, labels = cifar_images
    floats = images[:20].astype("float32")
    match = (
        r"Divide 0-255 float images by 255, or pass them as uint8"
        r".*images with dtype=float32.*max=255"
    )
    with pytest.raises(ValueError, match=match):
        extract_features(small_encoder, floats)
    with pytest.raises(ValueError, match=match):
        extract_features(
            small_encoder, tf.data.Dataset.from_tensor_slices((floats, labels[:20])).batch(8)
        )
    with pytest.raises(ValueError, match=r"train_data images with dtype=float32.*max=255"):
        evaluate_knn(small_encoder, (floats, labels[:20]), (images[:8], labels[:8]), 10)
    # Any integer type is 0-255, as uint8 is.
    np.testing.assert_allclose(
        extract_features(small_encoder, images[:20].astype("int32")),
        extract_features(small_encoder, images[:20]),
        rtol=1e-6,
    )


def test_labels_outside_num_classes_are_refused_naming_them(small_encoder, cifar_images):
    images, labels = cifar_images
    bad = labels[:24].copy()
    bad[[0, 9]] = [10, 12]
    match = r"values \[10 12\] outside \[0, 10\), num_classes=10"
    # Arrays are checked before any feature is extracted.
    with pytest.raises(ValueError, match="train_data labels " + match):
        evaluate_knn("not called", (images[:24], bad), (images[:8], labels[:8]), 10)
    with pytest.raises(ValueError, match="test_data labels " + match):
        evaluate_knn(small_encoder, (images[:8], labels[:8]), (images[:24], bad), 10)
    dataset = tf.data.Dataset.from_tensor_slices((images[:24], bad)).batch(8)
    with pytest.raises(ValueError, match="train_data labels " + match):
        evaluate_knn(small_encoder, dataset, (images[:8], labels[:8]), 10)
    bank, queries = np.eye(24, 4, dtype="float32") + 0.1, np.ones((3, 4), "float32")
    with pytest.raises(ValueError, match="train_labels " + match):
        weighted_knn_predict(bank, bad, queries, 10, k=3)
    with pytest.raises(ValueError, match=r"query_labels values \[-1\] outside \[0, 10\)"):
        knn_accuracy(bank, labels[:24], queries, [0, -1, 2], 10, k=3)
