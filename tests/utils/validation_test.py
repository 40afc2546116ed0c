import math

import numpy as np
import pytest

from keras_simclr.utils.validation import float_or_nan
from keras_simclr.utils.validation import is_integer
from keras_simclr.utils.validation import is_number
from keras_simclr.utils.validation import is_real_scalar
from keras_simclr.utils.validation import validate_temperature


@pytest.mark.parametrize(
    "value, number, real_scalar",
    [
        (0.5, True, True),
        (2, True, True),
        (np.float32(0.5), True, True),
        (np.int64(3), True, True),
        # A 0-d array converts to float but is not a scalar: LARS leaves
        # such values (and tensors, schedules) to the base optimizer.
        (np.array(0.5), True, False),
        (float("nan"), True, True),
        (True, False, False),
        ("0.5", False, False),
        (b"0.5", False, False),
        (None, False, False),
        ([0.5], False, False),
        (lambda step: 0.1, False, False),
    ],
)
def test_is_number_and_is_real_scalar_differ_on_arrays_only(value, number, real_scalar):
    assert is_number(value) is number
    assert is_real_scalar(value) is real_scalar


def test_is_integer():
    assert is_integer(3) and is_integer(np.int32(3))
    assert not is_integer(True) and not is_integer(3.0) and not is_integer("3")


def test_float_or_nan():
    assert float_or_nan(np.array(0.25)) == 0.25
    for value in ("1", b"1", True, None, [1.0], object()):
        assert math.isnan(float_or_nan(value))


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1", True, None])
def test_validate_temperature_names_what_it_received(bad):
    with pytest.raises(ValueError, match=r"Received: temperature="):
        validate_temperature(bad)


def test_validate_temperature_returns_a_float():
    value = validate_temperature(np.float32(0.5))
    assert value == 0.5 and type(value) is float
