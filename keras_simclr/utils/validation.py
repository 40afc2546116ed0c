"""Checks of constructor arguments shared across packages (internal).

Errors follow the keras-hub style: they name the argument and what was
received, e.g. `ValueError("... Received: temperature=0")`.
"""

import math
import numbers


def float_or_nan(value):
    """`float(value)` for a real number (a Python or NumPy scalar, a 0-d
    array), else nan: strings, bools and non-numbers never pass a range
    check made on the result.

    Example:

    >>> float_or_nan(0.5), float_or_nan("0.5")
    (0.5, nan)
    """
    if isinstance(value, (str, bytes, bool)):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def is_number(value):
    """Whether `float(value)` gives a number and `value` is not a bool or a
    string: Python and NumPy scalars, 0-d arrays and tensors pass.

    nan and inf pass (they are numbers): range checks come after.

    Example:

    >>> is_number(np.float32(0.8)), is_number(np.array(0.8)), is_number("0.8")
    (True, True, False)
    """
    if isinstance(value, (str, bytes, bool)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def is_real_scalar(value):
    """Whether `value` is a real scalar (`numbers.Real`: a Python or NumPy
    int or float), not a bool.

    Stricter than `is_number`: a 0-d array, a tensor or a callable is not a
    scalar, so e.g. an optimizer can tell a fixed learning rate (checked
    now) from a schedule or a variable (checked when it is used).

    Example:

    >>> is_real_scalar(1e-3), is_real_scalar(np.array(1e-3)), is_real_scalar(True)
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value):
    """Whether `value` is an integer (`numbers.Integral`: a Python or NumPy
    int), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_temperature(temperature):
    """Returns `temperature` as a float, or raises if it is not finite > 0.

    Example:

    >>> validate_temperature(0.5)
    0.5
    """
    value = float_or_nan(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"`temperature` must be a positive finite number. Received: temperature={temperature!r}"
        )
    return value


def validate_micro_batch_size(micro_batch_size):
    """`micro_batch_size` as an int >= 1, or None; else a `ValueError`.

    Example:

    >>> validate_micro_batch_size(64), validate_micro_batch_size(None)
    (64, None)
    """
    if micro_batch_size is None:
        return None
    if not isinstance(micro_batch_size, numbers.Integral) or isinstance(micro_batch_size, bool):
        valid = False
    else:
        valid = int(micro_batch_size) >= 1
    if not valid:
        raise ValueError(
            "`micro_batch_size` must be a positive integer (images per chunk of "
            f"gradient caching) or None. Received: micro_batch_size={micro_batch_size!r}"
        )
    return int(micro_batch_size)
