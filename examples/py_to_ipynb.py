"""Writes a keras.io-style example script as a Jupyter notebook.

The script is the source; the notebook is generated from it and committed
beside it (`tests/examples/colab_notebook_test.py` checks that the two agree):

    python examples/py_to_ipynb.py examples/simclr_colab.py

writes `examples/simclr_colab.ipynb`. The script's layout, as on keras.io:

- a header docstring of `Key: value` lines (`Title`, `Author`, `Description`,
  `Accelerator`, ...; a value may continue on indented or following lines)
  becomes the first markdown cell, the title as its heading;
- every other top-level triple-quoted string (its opening `\"\"\"` at the start
  of a line) becomes a markdown cell;
- the code between them becomes code cells, one per stretch of code.

The notebook has no outputs and fixed cell ids, so the same script always
gives the same file. `Accelerator: GPU` (or `TPU`) selects that Colab runtime.
"""

import argparse
import os

import nbformat

QUOTES = '"""'


def _blocks(lines):
    """Splits the lines into `("markdown" | "code", text)` blocks, in order."""
    blocks, code, index = [], [], 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith(QUOTES):
            code.append(line)
            continue
        blocks.append(("code", "\n".join(code)))
        code = []
        first = line[len(QUOTES) :].rstrip()
        if first.endswith(QUOTES):  # """## Section""" on one line
            text = [first[: -len(QUOTES)]]
        else:
            text = [first]
            while not text[-1].endswith(QUOTES):
                if index == len(lines):
                    raise ValueError(f"A markdown block never closes. Received: {line!r}")
                text.append(lines[index].rstrip())
                index += 1
            text[-1] = text[-1][: -len(QUOTES)]
        blocks.append(("markdown", "\n".join(text)))
    blocks.append(("code", "\n".join(code)))
    return [(kind, text.strip("\n")) for kind, text in blocks if text.strip()]


def _header(text):
    """The header docstring's fields, `{key: value}` in order."""
    fields, key = {}, None
    for line in text.strip().splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip() and " " not in name.strip() and not line[0].isspace():
            key = name.strip()
            fields[key] = value.strip()
        elif key is not None and line.strip():
            fields[key] = f"{fields[key]} {line.strip()}"
        elif line.strip():
            raise ValueError(
                f"The header holds `Key: value` lines only. Received: {line.strip()!r}"
            )
    if "Title" not in fields:
        raise ValueError(f"The header needs a `Title:` line. Received: {text.strip()!r}")
    return fields


def to_notebook(script):
    """The notebook of a keras.io-style example script.

    Args:
        script: the script's source text.

    Returns:
        an `nbformat` v4 notebook, without outputs, with fixed cell ids.

    Raises:
        ValueError: the script does not open with a header docstring
            holding a `Title:`, or a markdown block is not closed.
    """
    blocks = _blocks(script.splitlines())
    if not blocks or blocks[0][0] != "markdown":
        raise ValueError("The script must open with a header docstring (Title: ..., Author: ...).")
    fields = _header(blocks[0][1])
    heading = [f"# {fields.pop('Title')}", ""]
    heading += [f"**{key}:** {value}<br>" for key, value in fields.items()]
    heading[-1] = heading[-1].removesuffix("<br>")
    cells = [nbformat.v4.new_markdown_cell("\n".join(heading))]
    for kind, text in blocks[1:]:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cells.append(make(text))
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index:02d}"
    metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    accelerator = fields.get("Accelerator", "").upper()
    if accelerator in ("GPU", "TPU"):
        metadata["accelerator"] = accelerator
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    nbformat.validate(notebook)
    return notebook


def notebook_text(script_path):
    """The text of the notebook generated from the script at `script_path`."""
    with open(script_path, encoding="utf-8") as f:
        return nbformat.writes(to_notebook(f.read())) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("script", help="the example script, e.g. examples/simclr_colab.py")
    parser.add_argument("--output", help="the notebook's path; default: the script's, .ipynb")
    args = parser.parse_args()
    output = args.output or os.path.splitext(args.script)[0] + ".ipynb"
    with open(output, "w", encoding="utf-8") as f:
        f.write(notebook_text(args.script))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
