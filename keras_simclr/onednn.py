"""TensorFlow's oneDNN CPU kernels: on in the CLI, one call away in a notebook.

TensorFlow turns its oneDNN (formerly MKL) CPU kernels on by default only on
x86 CPUs with AVX512-VNNI, AVX512-BF16 or AMX. On other x86 CPUs (AVX2 only,
e.g. most AMD EPYC and older Intel cloud machines) it runs its Eigen kernels,
and a ResNet's forward and backward passes are much slower there: on the
2-core AVX2 machine of `BENCHMARKS.md`, ResNet-18-CIFAR pretraining ran
1.70x faster end to end with oneDNN on (12.9 against 7.6 images/s). On a
2-core AVX512-VNNI machine, where TensorFlow turns them on itself, the
training step of a ResNet-18 x0.25 `ContrastiveModel` at batch 128 ran 1.78x
faster with them than with `TF_ENABLE_ONEDNN_OPTS=0` (253 against 142
images/s, 1.7x less CPU time; interleaved runs, each in a fresh process).

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, so the
choice must be made before anything imports TensorFlow (Keras on the
TensorFlow backend does). Importing `keras_simclr` changes nothing; instead:

- `keras-simclr` (the command line) sets `TF_ENABLE_ONEDNN_OPTS=1` before it
  imports TensorFlow, unless you set the variable yourself.
- In a notebook or script, call `keras_simclr.enable_onednn()` first thing,
  or set `TF_ENABLE_ONEDNN_OPTS=1` in the environment.

A value you set yourself wins: `TF_ENABLE_ONEDNN_OPTS=0` keeps the Eigen
kernels. oneDNN may change float32 results in the last bits (another
summation order), as TensorFlow's own start-up message says.
"""

import os
import sys

ENV_VAR = "TF_ENABLE_ONEDNN_OPTS"


def enable_onednn():
    """Turns on TensorFlow's oneDNN CPU kernels for this process.

    Sets `TF_ENABLE_ONEDNN_OPTS=1` unless the variable is already set (a
    value you set yourself wins: `0` keeps TensorFlow's Eigen kernels).
    TensorFlow reads the variable once, when it is imported, so call this
    before anything imports TensorFlow: before `import keras` on the
    TensorFlow backend, `import tensorflow`, or a `keras_simclr` submodule
    that uses Keras. Importing `keras_simclr` itself does not import
    TensorFlow.

    Returns:
        `True` if this call set the variable, `False` if it was set already
        (from the environment or an earlier call; then nothing changes).

    Raises:
        RuntimeError: TensorFlow is already imported and the variable is
            unset: TensorFlow has chosen its kernels, too late to change them
            in this process (restart the Python process or notebook kernel
            and call this first).

    Example:

    ```python
    import keras_simclr as ks

    ks.enable_onednn()  # before Keras imports TensorFlow
    import keras
    ```
    """
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return False
    if "tensorflow" in sys.modules:
        raise RuntimeError(
            "enable_onednn() must be called before TensorFlow is imported: TensorFlow "
            f"reads {ENV_VAR} once, at import, and it is imported already (by "
            "`import keras` on the TensorFlow backend, `import tensorflow`, or a "
            "keras_simclr submodule). Restart the Python process (or notebook kernel) "
            f"and call keras_simclr.enable_onednn() first, or set {ENV_VAR}=1 in the "
            f"environment. Received: {ENV_VAR}={value!r}"
        )
    os.environ[ENV_VAR] = "1"
    return True
