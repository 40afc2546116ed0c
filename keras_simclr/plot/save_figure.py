"""Atomic PNG writing and the inline-displayable figure the plots return."""

import io
import os

from matplotlib.figure import Figure


class InlineFigure(Figure):
    """A `matplotlib.figure.Figure` that Jupyter shows as a PNG.

    A figure made without `pyplot` has no canvas manager, and IPython shows
    one as an image only once the inline backend has registered its
    formatter (when `pyplot` is first imported). `_repr_png_` makes the
    figure show inline in any notebook, `pyplot` or not; everything else is
    `Figure`'s.
    """

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def save_figure(figure, path, dpi=100):
    """Writes `figure` to `path` as a PNG, atomically.

    The PNG is written to a temporary file in the same folder, then renamed
    over `path`: a process killed mid-write leaves the previous file (or
    none), never a truncated one. The folder is created if needed.

    Args:
        figure: a `matplotlib.figure.Figure`.
        path: the PNG's path.
        dpi: dots per inch; the PNG is `figure.get_size_inches() * dpi`
            pixels.

    Returns:
        `path`.

    Example:

    ```python
    save_figure(training_curves(history), "runs/curves.png")
    ```
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Beside `path` (a rename within one file system), one per process.
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            figure.savefig(f, format="png", dpi=dpi)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
