"""Writers of `embed`'s output, one batch of rows at a time: `.npy`, `.csv`, `.parquet`.

Each writer is opened with the row count and feature width, takes the rows
batch by batch in order (`write`), and holds at most one batch in memory:

- `.npy`: the features alone, float32 `(N, D)`, written into a memory map
  (`numpy.lib.format.open_memmap`) of the known shape; `numpy.load` reads it
  back (`mmap_mode="r"` for a large one). Row i's image is row i of the
  index beside it, `<name>.index.csv` for `<name>.npy`: columns `path`, and
  `label`, `class_name` where the folder has classes.
- `.csv`: one file, columns `path`, [`label`, `class_name`], `f0` ...
  `f{D-1}`; floats written with 9 significant digits, which give back the
  float32 values exactly.
- `.parquet`: columns `path` (string), [`label` (int32), `class_name`
  (string)], `embedding` (a fixed-size list of D float32), one row group
  per batch (`pyarrow.parquet.ParquetWriter`). `pandas.read_parquet` gives
  one NumPy array per row (`numpy.stack(frame["embedding"])`), polars an
  `Array(Float32, D)` column.

A writer that fails, or is closed with `abort()`, removes what it wrote, so
no half-written output is left behind looking complete.

This module imports neither TensorFlow nor Keras; pyarrow only for parquet.
"""

import csv
import os

import numpy as np

# Index file of a `.npy` output: `<name>.npy` -> `<name>.index.csv`.
INDEX_SUFFIX = ".index.csv"

# Significant digits that write any float32 so that it reads back exactly.
_FLOAT32_DIGITS = 9


def _index_columns(has_labels):
    return ["path", "label", "class_name"] if has_labels else ["path"]


def _index_rows(paths, labels, class_names):
    if labels is None:
        return [[path] for path in paths]
    return [
        [path, int(label), class_names[int(label)]]
        for path, label in zip(paths, labels, strict=True)
    ]


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class EmbeddingWriter:
    """Base class: `open(...)`, `write(...)` per batch, then `close()` or `abort()`.

    Args:
        path: the output file.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.opened = False

    def files(self):
        """Every file this writer creates."""
        return [self.path]

    def open(self, num_rows, feature_dim, class_names=None):
        """Creates the output for `num_rows` rows of `feature_dim` features.

        Args:
            num_rows: how many rows `write` will be given in all.
            feature_dim: D, the width of every row's features.
            class_names: the class names when the rows carry labels, else
                `None`.
        """
        self.num_rows = int(num_rows)
        self.feature_dim = int(feature_dim)
        self.class_names = None if class_names is None else list(class_names)
        self.rows_written = 0
        self.opened = True

    def write(self, paths, features, labels=None):
        """Appends a batch: relative `paths`, float32 `features` `(B, D)`, int `labels` `(B,)`."""
        raise NotImplementedError

    def _release(self):
        """Closes what the writer holds open (files, a memory map); a no-op by default.

        `close` and `abort` call it first; it must be safe to call twice and
        before `open`.
        """

    def close(self):
        """Finishes the output; raises if fewer rows were written than announced."""
        self._release()
        if self.rows_written != self.num_rows:
            raise ValueError(
                f"{self.path} was given {self.rows_written} rows, not the {self.num_rows} "
                "announced. Received: fewer images than listed"
            )

    def abort(self):
        """Removes what was written (after a failure); a file never opened is left alone."""
        self._release()
        if not self.opened:
            return
        for path in self.files():
            _remove(path)


class NpyWriter(EmbeddingWriter):
    """Features into `<name>.npy` (memory-mapped), paths into `<name>.index.csv`."""

    def __init__(self, path):
        super().__init__(path)
        self.index_path = self.path[: -len(".npy")] + INDEX_SUFFIX
        self._features = self._index_file = None

    def files(self):
        return [self.path, self.index_path]

    def open(self, num_rows, feature_dim, class_names=None):
        super().open(num_rows, feature_dim, class_names)
        self._features = np.lib.format.open_memmap(
            self.path, mode="w+", dtype=np.float32, shape=(self.num_rows, self.feature_dim)
        )
        self._index_file = open(self.index_path, "w", newline="", encoding="utf-8")
        self._index = csv.writer(self._index_file)
        self._index.writerow(_index_columns(class_names is not None))

    def write(self, paths, features, labels=None):
        start, stop = self.rows_written, self.rows_written + len(paths)
        self._features[start:stop] = features
        self._index.writerows(_index_rows(paths, labels, self.class_names))
        self.rows_written = stop

    def _release(self):
        if self._features is not None:
            self._features.flush()
            self._features = None  # unmaps the file
        if self._index_file is not None:
            self._index_file.close()
            self._index_file = None


class CsvWriter(EmbeddingWriter):
    """One CSV: `path`, [`label`, `class_name`], `f0` ... `f{D-1}`."""

    def open(self, num_rows, feature_dim, class_names=None):
        super().open(num_rows, feature_dim, class_names)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        columns = _index_columns(class_names is not None)
        self._csv.writerow(columns + [f"f{i}" for i in range(self.feature_dim)])

    def write(self, paths, features, labels=None):
        values = [
            [f"{value:.{_FLOAT32_DIGITS}g}" for value in row.tolist()]
            for row in np.asarray(features, np.float32)
        ]
        index = _index_rows(paths, labels, self.class_names)
        self._csv.writerows(head + row for head, row in zip(index, values, strict=True))
        self.rows_written += len(paths)

    def _release(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None


class ParquetWriter(EmbeddingWriter):
    """Parquet: `path`, [`label`, `class_name`], `embedding` (fixed-size float32 list)."""

    def open(self, num_rows, feature_dim, class_names=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().open(num_rows, feature_dim, class_names)
        fields = [pa.field("path", pa.string())]
        if class_names is not None:
            fields += [pa.field("label", pa.int32()), pa.field("class_name", pa.string())]
        fields.append(pa.field("embedding", pa.list_(pa.float32(), self.feature_dim)))
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(self.path, self._schema)

    def write(self, paths, features, labels=None):
        import pyarrow as pa

        features = np.ascontiguousarray(features, np.float32)
        columns = [pa.array(list(paths), pa.string())]
        if self.class_names is not None:
            labels = np.asarray(labels, np.int32)
            columns.append(pa.array(labels, pa.int32()))
            columns.append(pa.array([self.class_names[i] for i in labels.tolist()], pa.string()))
        columns.append(
            pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), self.feature_dim)
        )
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema))
        self.rows_written += len(paths)

    def _release(self):
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None


# extension -> writer class.
WRITERS = {".npy": NpyWriter, ".csv": CsvWriter, ".parquet": ParquetWriter}


def embedding_writer(output):
    """The writer of `output`, chosen by its extension (any case), before anything is read.

    Args:
        output: a path ending `.npy`, `.csv` or `.parquet`.

    Returns:
        an unopened `EmbeddingWriter`.

    Raises:
        ValueError: any other extension, naming it and the known ones.

    Example:

    ```python
    writer = embedding_writer("embeddings.parquet")
    writer.open(num_rows=2, feature_dim=3)
    writer.write(["a.jpg", "b.jpg"], np.zeros((2, 3), "float32"))
    writer.close()
    ```
    """
    output = os.fspath(output)
    extension = os.path.splitext(output)[1]
    writer = WRITERS.get(extension.lower())
    if writer is None:
        raise ValueError(
            f"Unknown embedding output extension {extension or '(none)'!r}; known: "
            f"{', '.join(WRITERS)}. Received: output={output!r}"
        )
    return writer(output)
