import os
import subprocess
import sys

import keras
import pytest

from keras_simclr import recipes
from tests.conftest import REPO_ROOT


@pytest.mark.process
def test_importing_models_alone_registers_everything_a_saved_model_holds(tmp_path):
    # `import keras_simclr` is lazy (no Keras, no TensorFlow), so the classes
    # register when keras_simclr.models is imported: the model, its layers,
    # its augmenter and its LARS optimizer must all reload from that alone.
    keras.utils.set_random_seed(0)
    recipe = recipes.simclr(
        image_size=32, batch_size=8, epochs=1, train_examples=8, width_multiplier=0.125
    )
    recipe.model.build((None, 32, 32, 3))
    path = str(tmp_path / "model.keras")
    recipe.model.save(path)
    script = (
        "import keras, keras_simclr.models\n"
        f"model = keras.saving.load_model({path!r})\n"
        "print(type(model).__name__, type(model.optimizer).__name__,"
        " type(model.augmenter).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["ContrastiveModel", "LARS", "SimCLRAugmentation"]
