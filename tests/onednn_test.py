import platform

import pytest

from tests.conftest import run_in_subprocess

CHECK = """
import os
{first}
from keras_simclr import onednn
print("before_tf", onednn.onednn_enabled())
import tensorflow as tf
print("env", os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
print("enabled", onednn.onednn_enabled())
print("again", onednn.enable_onednn_by_default())
"""

X86 = platform.machine() in ("x86_64", "AMD64")


def _run(first, backend="tensorflow", extra_env=None):
    out = run_in_subprocess(CHECK.format(first=first), backend=backend, extra_env=extra_env)
    return dict(line.split(" ", 1) for line in out.strip().splitlines())


def test_import_turns_onednn_on_before_tensorflow_loads(monkeypatch):
    # This test process imported keras_simclr already, which set the variable.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    seen = _run("import keras_simclr")  # Keras (TF backend) imports TensorFlow here
    assert seen["env"] == "1"
    assert seen["again"] == "False"  # already set: nothing to do
    if X86:
        assert seen["before_tf"] == seen["enabled"] == "True"
    # On JAX, keras_simclr does not import TensorFlow: the answer waits for it.
    seen = _run("import keras_simclr", backend="jax")
    assert seen["before_tf"] == "None" and seen["env"] == "1"
    if X86:
        assert seen["enabled"] == "True"


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_value_the_user_set_wins(value):
    seen = _run("import keras_simclr", extra_env={"TF_ENABLE_ONEDNN_OPTS": value})
    assert seen["env"] == value
    if X86:
        assert seen["enabled"] == str(value == "1")


def test_too_late_once_tensorflow_is_imported(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    seen = _run("import tensorflow\nimport keras_simclr")
    assert seen["env"] == "None"
    assert seen["again"] == "False"  # TensorFlow's own default stands
