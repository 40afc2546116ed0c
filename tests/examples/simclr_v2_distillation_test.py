import json
import os
import subprocess
import sys

import keras
import pytest

from keras_simclr.export.export_encoder import KERAS_FILE
from keras_simclr.export.export_encoder import METADATA_FILE
from keras_simclr.models import ResNet
from tests.conftest import REPO_ROOT


def _encoder_export(folder):
    """An export_encoder-style directory holding only what `format="keras"` reads.

    (A real export also writes the SavedModel; the example reloads the
    `.keras` file, so the test skips the slow SavedModel export.)
    """
    os.makedirs(folder)
    keras.utils.set_random_seed(0)
    encoder = ResNet(18, width_multiplier=0.125, cifar_stem=True, input_shape=(32, 32, 3))
    encoder.save(os.path.join(folder, KERAS_FILE))
    with open(os.path.join(folder, METADATA_FILE), "w") as f:
        json.dump({"image_size": [32, 32], "keras_file": KERAS_FILE}, f)
    return folder


@pytest.mark.process
def test_example_small_steps_mode_runs_end_to_end(cifar_folder, tmp_path):
    output = tmp_path / "out"
    encoder = _encoder_export(str(tmp_path / "encoder"))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "examples", "simclr_v2_distillation.py"),
            "--image_folder",
            cifar_folder,
            "--encoder",
            encoder,
            "--small_steps",
            "--output_dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The fixture holds 20 images per class: 10% labelled is 2 per class.
    assert "200 training images (20 labelled), 200 test images" in result.stdout
    supervised = float(result.stdout.split("supervised student test accuracy:")[1].split()[0])
    distilled = float(result.stdout.split("distilled student test accuracy:")[1].split()[0])
    results = json.loads((output / "results.json").read_text())
    assert results["num_labelled"] == 20 and results["num_train"] == 200
    assert results["encoder"] == encoder and results["epochs"] == 1
    assert abs(results["supervised_student_accuracy"] - supervised) < 1e-4
    assert abs(results["distilled_student_accuracy"] - distilled) < 1e-4
    for key in (
        "teacher_accuracy",
        "supervised_student_accuracy",
        "distilled_student_accuracy",
        "distilled_teacher_agreement",
    ):
        assert 0.0 <= results[key] <= 1.0, (key, results[key])
    # One epoch of distillation from a 10-class teacher: near log(10) = 2.30.
    assert len(results["distillation_loss"]) == 1
    assert 0.5 < results["distillation_loss"][0] < 5.0
    assert (output / "student.keras").stat().st_size > 0
