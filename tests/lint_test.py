"""The code is linted and formatted with ruff, configured in pyproject.toml.

CI runs only the README's pytest command, so these tests are how it checks both. Fix with
`python -m ruff check --fix` and `python -m ruff format` (the paths below).
"""

import subprocess
import sys

from tests.conftest import REPO_ROOT

PATHS = ["keras_simclr", "tests", "benchmarks", "examples"]


def _ruff(*args):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, *PATHS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert "No module named ruff" not in result.stderr, (
        "ruff is missing: install the dev extra (pip install -e '.[dev]')"
    )
    return result


def test_ruff_check_finds_nothing():
    result = _ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_format_changes_nothing():
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
