"""`keras-simclr embed`: one line at the end, one `error:` line for bad input, the script."""

import csv
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import keras_simclr
from keras_simclr.cli import embed
from keras_simclr.cli.errors import run_subcommand
from keras_simclr.cli.flag_config import flag_names
from tests.cli import evaluate_test
from tests.cli.tiny_run import tiny_env
from tests.conftest import REPO_ROOT

# The fixture: evaluate's tests' exported width-0.125 ResNet-18 (seed 0).
exported = evaluate_test.exported


def _config(**overrides):
    config = {name: None for name in flag_names(embed.define_flags)}
    config.update(batch_size=256, skip_bad_images=False, input_pipeline="auto", verbose=0)
    config.update(overrides)
    return config


def _fails_with_one_line(capsys, config):
    with pytest.raises(SystemExit) as exit_info:
        run_subcommand(embed.run_embedding, config, verbose=1)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_writes_the_output_and_prints_one_line(capsys, tiny_folder, exported, tmp_path):
    output = str(tmp_path / "out" / "embeddings.parquet")  # the folder is created
    config = _config(
        encoder=exported, image_folder=os.path.join(tiny_folder, "train"), output=output
    )
    result = run_subcommand(embed.run_embedding, config)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"Wrote 30 embeddings of dimension 64 to {output}"]
    table = pq.read_table(output)
    assert table.num_rows == 30 and table.column("path").to_pylist() == result.relative_paths


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"encoder": "no/such/encoder"}, "Received: encoder='no/such/encoder'"),
        ({"output": "embeddings.json"}, "extension '.json'; known: .npy, .csv, .parquet"),
        ({"output": None}, "--output is required"),
        ({"image_folder": "EMPTY"}, "No image files"),
        ({"image_folder": "no/such/folder"}, "Received: root='no/such/folder'"),
    ],
)
def test_bad_input_is_one_error_line(capsys, tiny_folder, exported, tmp_path, overrides, expected):
    (tmp_path / "empty").mkdir()
    config = _config(encoder=exported, image_folder=tiny_folder, output=str(tmp_path / "e.npy"))
    config.update(overrides)
    if config["image_folder"] == "EMPTY":
        config["image_folder"] = str(tmp_path / "empty")
    assert expected in _fails_with_one_line(capsys, config)
    assert not os.path.exists(tmp_path / "e.npy")


@pytest.mark.process
def test_console_script_streams_to_npy_with_a_progress_bar(tiny_folder, exported, tmp_path):
    output = str(tmp_path / "embeddings.npy")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_simclr.cli.main",
            "embed",
            "--encoder",
            exported,
            "--image_folder",
            tiny_folder,
            "--output",
            output,
            "--batch_size",
            "16",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=tiny_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    index = str(tmp_path / "embeddings.index.csv")
    assert result.stdout.strip().splitlines()[-1] == (
        f"Wrote 60 embeddings of dimension 64 to {output} and {index}"
    )
    assert "60/60" in result.stdout  # Keras's progress bar
    with open(index, newline="") as f:
        rows = list(csv.reader(f))
    # ROOT/{train,test}/<class>/<file> is nested two deep: paths, no labels.
    assert rows[0] == ["path"] and len(rows) == 61
    assert [row[0] for row in rows[1:4]] == [
        "test/airplane/0000.jpg",
        "test/airplane/0001.jpg",
        "test/airplane/0002.jpg",
    ]
    expected = keras_simclr.embed(exported, tiny_folder, batch_size=16, verbose=0)
    assert [row[0] for row in rows[1:]] == expected.relative_paths
    np.testing.assert_allclose(np.load(output), expected.features, atol=1e-5)
