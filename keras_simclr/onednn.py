"""TensorFlow's oneDNN CPU kernels: on by default for keras-simclr.

TensorFlow turns its oneDNN (formerly MKL) CPU kernels on by default only on
x86 CPUs with AVX512-VNNI, AVX512-BF16 or AMX. On other x86 CPUs (AVX2 only,
e.g. most AMD EPYC and older Intel cloud machines) it runs its Eigen kernels,
and a ResNet's forward and backward passes are much slower there: on the
2-core AVX2 machine of `BENCHMARKS.md`, ResNet-18-CIFAR pretraining ran
1.70x faster end to end with oneDNN on (12.9 against 7.6 images/s).

Importing `keras_simclr` therefore sets `TF_ENABLE_ONEDNN_OPTS=1` when it is
unset and TensorFlow is not imported yet (TensorFlow reads the variable once,
at import). A value you set yourself wins: `TF_ENABLE_ONEDNN_OPTS=0` keeps the
Eigen kernels. oneDNN may change float32 results in the last bits (another
summation order), as TensorFlow's own start-up message says.
"""

import os
import sys

ENV_VAR = "TF_ENABLE_ONEDNN_OPTS"


def enable_onednn_by_default():
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` if unset and TensorFlow is not imported.

    Returns:
        `True` if this call set the variable, `False` if it was already set
        or TensorFlow had been imported (too late to change it).

    Example:

    ```python
    import keras_simclr  # calls this before Keras imports TensorFlow
    keras_simclr.onednn.onednn_enabled()  # True on an x86 CPU build
    ```
    """
    if ENV_VAR in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ[ENV_VAR] = "1"
    return True


def onednn_enabled():
    """Whether the imported TensorFlow runs its oneDNN CPU kernels.

    Returns:
        `True` or `False` once TensorFlow is imported (this does not import
        it), `None` before, or if this TensorFlow build cannot say.
    """
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())
