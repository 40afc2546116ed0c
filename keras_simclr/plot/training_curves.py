"""Loss, contrastive accuracy and kNN accuracy per epoch."""

import math

from matplotlib.ticker import MaxNLocator

from keras_simclr.plot.save_figure import InlineFigure
from keras_simclr.plot.save_figure import save_figure
from keras_simclr.utils.validation import float_or_nan

# (metric logged by the models and KNNMonitor, panel title); each panel also
# draws the metric's `val_` twin when the history has one.
PANELS = (
    ("loss", "loss"),
    ("contrastive_accuracy", "contrastive accuracy"),
    ("knn_accuracy", "kNN accuracy"),
)


def _number(value):
    """A float from a log value (CSV values are strings); nan if none."""
    if isinstance(value, (str, bytes)):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return float_or_nan(value)


def _rows_from_dict(metrics, epochs=None):
    """Per-epoch rows from a `History.history`-style dict of lists."""
    lengths = {name: len(values) for name, values in metrics.items()}
    count = len(epochs) if epochs is not None else max(lengths.values(), default=0)
    for name, length in lengths.items():
        if length != count:
            raise ValueError(
                f"history[{name!r}] holds {length} values for {count} epochs, so its epochs "
                "are unknown (a KNNMonitor with every_n_epochs > 1 logs only the epochs it "
                "evaluates): pass per-epoch rows with nan where a metric was not logged "
                "(as log.csv holds), or use every_n_epochs=1. "
                f"Received: history with lengths {lengths}"
            )
    epochs = list(epochs) if epochs is not None else list(range(count))
    return [
        {"epoch": epoch, **{name: values[index] for name, values in metrics.items()}}
        for index, epoch in enumerate(epochs)
    ]


def epoch_rows(history):
    """The epochs of `history` as rows `{"epoch": 0-based int, metric: float}`.

    Args:
        history: a `keras.callbacks.History` (what `fit` returns), its
            `.history` dict of per-epoch lists, or a list of per-epoch dicts
            (e.g. `log.csv`'s rows read with `csv.DictReader`: values may be
            strings, and `"nan"` or `""` where a metric was not logged). A
            row's `"epoch"` (0-based, as `CSVLogger` writes it) places it;
            rows without one follow the previous row.

    Returns:
        a list of dicts sorted by epoch, values as floats (nan: not logged).

    Raises:
        ValueError: anything else, or a dict whose lists differ in length.
    """
    import keras

    if isinstance(history, keras.callbacks.History):
        rows = _rows_from_dict(history.history, epochs=history.epoch)
    elif isinstance(history, dict):
        rows = _rows_from_dict(history)
    elif isinstance(history, (list, tuple)) and all(isinstance(row, dict) for row in history):
        rows = list(history)
    else:
        raise ValueError(
            "history must be a keras.callbacks.History, its .history dict, or a list of "
            f"per-epoch dicts. Received: history of type {type(history).__name__}"
        )
    table = {}
    next_epoch = 0
    for row in rows:
        epoch = _number(row.get("epoch", next_epoch))
        epoch = next_epoch if math.isnan(epoch) else int(epoch)
        values = {name: _number(value) for name, value in row.items() if name != "epoch"}
        table[epoch] = {"epoch": epoch, **values}  # a later row of an epoch wins
        next_epoch = epoch + 1
    return [table[epoch] for epoch in sorted(table)]


def check_knn_at_init(knn_at_init):
    """`knn_at_init` as a float in [0, 1] (or `None`); raises otherwise."""
    if knn_at_init is None:
        return None
    value = _number(knn_at_init)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"knn_at_init must be in [0, 1]. Received: knn_at_init={knn_at_init!r}")
    return value


def _draw(axis, rows, metric, title, baseline=None):
    # Every panel spans all epochs (counted from 1), each an integer tick.
    axis.set_xlim(rows[0]["epoch"] + 0.5, rows[-1]["epoch"] + 1.5)
    drawn = []
    for name, style in ((metric, "-"), (f"val_{metric}", "--")):
        points = [
            (row["epoch"] + 1, row[name]) for row in rows if math.isfinite(row.get(name, math.nan))
        ]
        if not points:
            continue
        x, y = zip(*points)
        if name.startswith("val_"):
            label = "validation"
        else:
            label = "trained encoder" if baseline is not None else "training"
        axis.plot(x, y, style, marker="o", markersize=3, label=label)
        drawn.append((name, y[-1]))
    if baseline is not None:
        axis.axhline(baseline, linestyle=":", color="gray", label="random initial encoder")
    if not drawn:
        axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes)
        axis.set_title(title)
    else:
        axis.set_title(f"{title} (last {drawn[0][1]:.4g})")
    if len(drawn) + (baseline is not None) > 1:
        axis.legend()
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def training_curves(history, knn_at_init=None):
    """A figure of the loss, contrastive accuracy and kNN accuracy per epoch.

    Three panels, epochs counted from 1: `loss`, `contrastive_accuracy`
    (both logged by `ContrastiveModel` and `MoCoModel`) and `knn_accuracy`
    (logged by `keras_simclr.evaluation.KNNMonitor`), each with its `val_`
    twin dashed where the history has one. Epochs where a metric was not
    logged (nan, e.g. kNN between evaluations) are skipped, not drawn as 0;
    a panel with no value says "not logged". With `knn_at_init`, a dotted
    line marks the kNN accuracy of the random initial encoder: the value
    training has to beat.

    Args:
        history: a `keras.callbacks.History` (what `fit` returns), its
            `.history` dict, or a list of per-epoch dicts such as the rows of
            `keras-simclr pretrain`'s `log.csv` (see `epoch_rows`).
        knn_at_init: the kNN accuracy before training (e.g. `evaluate_knn`
            on the untrained model, `metrics.json`'s `knn_accuracy_at_init`);
            `None`: not drawn.

    Returns:
        a `matplotlib.figure.Figure` (shown inline in Jupyter).

    Raises:
        ValueError: a `history` of another type, one without epochs, a
            dict whose lists differ in length (a `KNNMonitor` with
            `every_n_epochs > 1` logs fewer values than epochs; give rows
            with nan instead), or a `knn_at_init` outside [0, 1], naming
            what was received.

    Example:

    ```python
    history = model.fit(batches, epochs=10, callbacks=[KNNMonitor(...)])
    keras_simclr.plot.training_curves(history, knn_at_init=0.31)

    rows = list(csv.DictReader(open("runs/log.csv")))
    keras_simclr.plot.training_curves(rows)
    ```
    """
    knn_at_init = check_knn_at_init(knn_at_init)
    rows = epoch_rows(history)
    if not rows:
        raise ValueError(f"history holds no epochs. Received: history={history!r}")
    figure = InlineFigure(figsize=(12, 3.6), layout="constrained")
    axes = figure.subplots(1, len(PANELS))
    for axis, (metric, title) in zip(axes, PANELS):
        _draw(axis, rows, metric, title, knn_at_init if metric == "knn_accuracy" else None)
    return figure


def save_training_curves(path, history, knn_at_init=None, dpi=100):
    """Writes `training_curves(history)` as a PNG, atomically.

    Args:
        path: the PNG's path (e.g. `OUTPUT_DIR/curves.png`).
        history, knn_at_init: as in `training_curves`.
        dpi: dots per inch of the PNG.

    Returns:
        `path`.

    Raises:
        ValueError: as `training_curves`.

    Example:

    ```python
    save_training_curves("runs/curves.png", model.fit(batches, epochs=10))
    ```
    """
    return save_figure(training_curves(history, knn_at_init=knn_at_init), path, dpi=dpi)
