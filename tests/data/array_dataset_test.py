import numpy as np
import pytest

from keras_simclr.data import dataset_arrays
from keras_simclr.data import load_arrays


def test_uint8_arrays_round_trip(cifar_images):
    images, labels = cifar_images
    info = load_arrays(images, labels)
    assert info.num_examples == 256
    assert info.num_classes == int(labels.max()) + 1 == 10
    assert info.class_names == [str(i) for i in range(10)]
    assert info.image_size == (32, 32)
    assert info.in_memory  # nothing to decode: the pipelines do not cache it again
    np.testing.assert_array_equal(info.labels, labels)
    out_images, out_labels = dataset_arrays(info)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_labels, labels)
    assert out_images.dtype == np.uint8 and out_labels.dtype == np.int32


def test_float_and_integer_arrays_become_uint8(cifar_images):
    images, labels = cifar_images
    floats = images.astype(np.float32) / 255.0
    np.testing.assert_array_equal(dataset_arrays(load_arrays(floats, labels))[0], images)
    wide = images.astype(np.int64)
    np.testing.assert_array_equal(dataset_arrays(load_arrays(wide, labels))[0], images)


def test_unlabelled_arrays_and_class_names(cifar_images):
    images, labels = cifar_images
    info = load_arrays(images)
    assert info.num_classes == 0 and info.class_names == []
    np.testing.assert_array_equal(dataset_arrays(info)[1], np.zeros(256, np.int32))
    names = [f"class_{i}" for i in range(12)]
    info = load_arrays(images, labels, class_names=names)
    assert info.num_classes == 12 and info.class_names == names


@pytest.mark.parametrize(
    "shape, dtype, match",
    [
        ((32, 32, 3), np.uint8, r"images.shape=\(32, 32, 3\), dtype=uint8"),
        ((4, 32, 32, 1), np.uint8, r"images.shape=\(4, 32, 32, 1\)"),
        ((4, 3, 32, 32), np.float32, r"images.shape=\(4, 3, 32, 32\), dtype=float32"),
        ((0, 32, 32, 3), np.uint8, r"images.shape=\(0, 32, 32, 3\)"),
        ((4, 8, 8, 3), np.bool_, "images.dtype=bool"),
        ((4, 8, 8, 3), np.complex64, "images.dtype=complex64"),
    ],
)
def test_bad_image_arrays_name_what_was_received(shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        load_arrays(np.zeros(shape, dtype))


def test_out_of_range_values_are_errors(cifar_images):
    images, labels = cifar_images
    with pytest.raises(ValueError, match=r"float32 with values in \[0.0, 255.0\]"):
        load_arrays(images.astype(np.float32), labels)  # 0-255 floats: ambiguous
    with pytest.raises(ValueError, match=r"int16 with values in \[-1, 255\]"):
        load_arrays(images.astype(np.int16) - (images == 0), labels)
    nan = images.astype(np.float32) / 255.0
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="nan"):
        load_arrays(nan, labels)


def test_bad_labels_are_errors(cifar_images):
    images, labels = cifar_images
    with pytest.raises(ValueError, match=r"shape \(256,\).*labels.shape=\(255,\)"):
        load_arrays(images, labels[:255])
    with pytest.raises(ValueError, match="dtype=float64"):
        load_arrays(images, labels.astype(np.float64))
    with pytest.raises(ValueError, match="min\\(labels\\)=-1"):
        load_arrays(images, labels - 1)
    with pytest.raises(ValueError, match="3 class_names but labels go up to 9"):
        load_arrays(images, labels, class_names=["a", "b", "c"])
