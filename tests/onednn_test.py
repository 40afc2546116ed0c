"""oneDNN: `import keras_simclr` changes nothing; `enable_onednn()` and the CLI turn it on.

Each case is a fresh Python process (TensorFlow reads TF_ENABLE_ONEDNN_OPTS
once, at import). Whether TensorFlow runs its oneDNN kernels is read from
its own start-up log line ("oneDNN custom operations are on"), printed at
import when they are on.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

X86 = platform.machine() in ("x86_64", "AMD64")
ON_LINE = "oneDNN custom operations are on"

pytestmark = pytest.mark.process

PRINT = """
import json, os, sys
print(json.dumps({"env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "out": OUT,
                  "keras": "keras" in sys.modules, "tensorflow": "tensorflow" in sys.modules}))
"""


def _run(code, env_value=None, backend="tensorflow"):
    """Runs `code` (which sets OUT) and then PRINT; returns (printed dict, TF's oneDNN log)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="0")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    result = subprocess.run(
        [sys.executable, "-c", code + PRINT], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), ON_LINE in result.stderr


def test_import_has_no_side_effect_and_imports_neither_keras_nor_tensorflow():
    seen, _ = _run("import keras_simclr\nOUT = sorted(keras_simclr.__all__)")
    assert seen["env"] is None
    assert not seen["keras"] and not seen["tensorflow"]
    assert "enable_onednn" in seen["out"] and "models" in seen["out"]


def test_enable_onednn_before_tensorflow_turns_it_on():
    code = (
        "import keras_simclr as ks\n"
        "first = ks.enable_onednn()\n"
        "import keras\n"  # the TensorFlow backend imports TensorFlow here
        "OUT = [first, ks.enable_onednn(), type(ks.models.ProjectionHead()).__name__]"
    )
    seen, on = _run(code)
    assert seen["out"] == [True, False, "ProjectionHead"]
    assert seen["env"] == "1" and seen["tensorflow"]
    if X86:
        assert on


def test_a_value_the_user_set_wins():
    seen, on = _run(
        "import keras_simclr as ks\nOUT = ks.enable_onednn()\nimport tensorflow", env_value="0"
    )
    assert seen["out"] is False and seen["env"] == "0"
    assert not on  # Eigen kernels, as asked


def test_too_late_once_tensorflow_is_imported_says_so():
    code = (
        "import tensorflow\nimport keras_simclr as ks\n"
        "try:\n    ks.enable_onednn()\n    OUT = None\n"
        "except RuntimeError as error:\n    OUT = str(error)\n"
    )
    seen, _ = _run(code)
    assert "must be called before TensorFlow is imported" in seen["out"]
    assert "Received: TF_ENABLE_ONEDNN_OPTS=None" in seen["out"]
    assert seen["env"] is None  # TensorFlow's own default stands
    # Set before TensorFlow was imported (1, or 0 for Eigen): that value
    # stands, nothing to do, no error (a child of the test suite, say).
    for value in ("1", "0"):
        seen, _ = _run(code.replace("OUT = None", "OUT = 'fine'"), env_value=value)
        assert seen["out"] == "fine" and seen["env"] == value


@pytest.mark.parametrize("env_value", [None, "0"])
def test_the_command_line_turns_it_on_before_importing_tensorflow(env_value):
    code = (
        "from keras_simclr.cli import main\n"
        "try:\n    main.run(['keras-simclr', 'pretrain', '--helpfull'])\n"
        "except SystemExit:\n    pass\n"
        "import tensorflow\nOUT = None\n"
    )
    seen, on = _run(code, env_value=env_value)
    assert seen["env"] == (env_value or "1")
    if X86:
        assert on == (env_value is None)
