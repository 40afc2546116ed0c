"""Decoding with Pillow into one uint8 array."""

import numpy as np
import pytest

from keras_simclr.data.image_decoding import decode_images
from keras_simclr.data.image_decoding import image_shape


def test_decode_images_from_bytes(cifar_images, cifar_npz):
    images, _ = cifar_images
    data = np.load(cifar_npz)
    offsets, blob = data["train_offsets"], data["train_bytes"]
    order = np.random.default_rng(0).permutation(len(offsets) - 1)[:64]
    jpegs = [blob[offsets[i] : offsets[i + 1]].tobytes() for i in order]
    decoded = decode_images(jpegs, num_threads=2)
    # conftest decodes the same JPEGs with Pillow, one by one.
    np.testing.assert_array_equal(decoded, images[:64])
    np.testing.assert_array_equal(decode_images(jpegs, num_threads=1), decoded)
    assert decode_images(jpegs[:3], image_size=48).shape == (3, 48, 48, 3)
    with pytest.raises(ValueError, match="Cannot decode the image image 1"):
        decode_images([jpegs[0], b"not an image"])
    with pytest.raises(ValueError, match="sources=\\[\\]"):
        decode_images([])
    assert image_shape(jpegs[0]) == (32, 32)
    with pytest.raises(ValueError, match="Cannot decode the image image 3"):
        image_shape(b"junk", 3)
