"""examples/simclr_colab.ipynb: generated from its script, and runs top to bottom."""

import base64
import importlib.util
import os
import re

import nbformat
import pytest

from tests.conftest import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "examples", "simclr_colab.py")
NOTEBOOK = os.path.join(REPO_ROOT, "examples", "simclr_colab.ipynb")


def _generator():
    """examples/py_to_ipynb.py (examples/ is not a package)."""
    path = os.path.join(REPO_ROOT, "examples", "py_to_ipynb.py")
    spec = importlib.util.spec_from_file_location("py_to_ipynb", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_is_the_one_its_script_generates():
    with open(NOTEBOOK, encoding="utf-8") as f:
        committed = f.read()
    assert committed == _generator().notebook_text(SCRIPT), (
        "examples/simclr_colab.ipynb is out of date: run "
        "`python examples/py_to_ipynb.py examples/simclr_colab.py` and commit both"
    )


def test_generator_splits_markdown_and_code_cells():
    script = '''"""
Title: A title
Author: someone
Description: first line
 and its continuation.
"""

"""## One line"""

import os

def f():
    """A docstring stays in its code."""
    return os.sep

"""
Two
lines
"""
f()
'''
    notebook = _generator().to_notebook(script)
    kinds = [(cell.cell_type, cell.source) for cell in notebook.cells]
    assert kinds == [
        (
            "markdown",
            "# A title\n\n**Author:** someone<br>\n"
            "**Description:** first line and its continuation.",
        ),
        ("markdown", "## One line"),
        (
            "code",
            'import os\n\ndef f():\n    """A docstring stays in its code."""\n    return os.sep',
        ),
        ("markdown", "Two\nlines"),
        ("code", "f()"),
    ]
    assert [cell.id for cell in notebook.cells] == [f"cell-0{i}" for i in range(5)]
    assert all(cell.get("outputs", []) == [] for cell in notebook.cells)
    with pytest.raises(ValueError, match="never closes"):
        _generator().to_notebook('"""\nTitle: x\n"""\n"""\nopen')
    with pytest.raises(ValueError, match="needs a `Title:` line"):
        _generator().to_notebook('"""\nAuthor: x\n"""\n')


def _text(cell):
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


def _png_bytes(cell):
    images = [output["data"]["image/png"] for output in cell.outputs if "data" in output]
    assert len(images) == 1, [output.get("data", output).keys() for output in cell.outputs]
    return base64.b64decode(images[0])


def _cell_running(notebook, code):
    return next(cell for cell in notebook.cells if code in cell.source)


@pytest.mark.slow
@pytest.mark.process
def test_notebook_runs_top_to_bottom_in_small_steps_mode(cifar_npz, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # The kernel (this interpreter: jupyter_client runs the spec's "python"
    # as sys.executable) inherits these.
    monkeypatch.setenv("KERAS_SIMCLR_SMALL_STEPS", "1")
    monkeypatch.setenv("KERAS_SIMCLR_DATA", os.path.dirname(cifar_npz))  # never tfds
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("PYTHONPATH", REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the working directory
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error

    text = "".join(_text(cell) for cell in notebook.cells)
    assert "256 training and 256 test images of (32, 32), 10 classes, from " in text
    assert "cifar10_jpeg.npz" in text
    at_init = float(re.search(r"kNN accuracy of the random encoder: ([0-9.]+)", text)[1])
    trained = float(re.search(r"kNN accuracy after 1 epoch\(s\): ([0-9.]+)", text)[1])
    probe = float(re.search(r"linear probe test accuracy: ([0-9.]+)", text)[1])
    for accuracy in (at_init, trained, probe):
        assert 0.0 <= accuracy <= 1.0
    # The notebook asserts the reloaded encoder's features equal the trained
    # encoder's (1e-5) before it prints this line.
    assert "max difference from the trained encoder" in text
    assert (tmp_path / "simclr_encoder" / "saved_model.pb").exists()
    # Both figures show inline as PNGs.
    grid = _png_bytes(_cell_running(notebook, "ks.plot.augmentation_grid("))
    curves = _png_bytes(_cell_running(notebook, "ks.plot.training_curves("))
    for picture in (grid, curves):
        assert picture.startswith(b"\x89PNG") and len(picture) > 10_000
