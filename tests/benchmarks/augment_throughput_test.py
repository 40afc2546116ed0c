"""benchmarks/augment_throughput.py runs in its --tiny mode and times what it says it times."""

import importlib.util
import math

import numpy as np
import pytest

from benchmarks import augment_recipes
from benchmarks import augment_throughput
from tests.benchmarks.runner import run_benchmark
from tests.conftest import run_in_subprocess


def assert_measured(report, batch_size=8, steps=2):
    assert report["status"] == "measured", report
    assert math.isfinite(report["images_per_s"]) and report["images_per_s"] > 0
    assert math.isfinite(report["compile_s"]) and report["compile_s"] > 0
    assert len(report["step_times_ms"]) == steps
    assert report["ms_per_step"] == pytest.approx(1000 * batch_size / report["images_per_s"])


@pytest.mark.process
def test_tiny_run_writes_positive_numbers(cifar_npz, tmp_path):
    report, result = run_benchmark(
        "augment_throughput", "--tiny", output=tmp_path / "augment_throughput.json"
    )

    assert report["command"].startswith("python -m benchmarks.augment_throughput --tiny")
    assert report["machine"]["backend"] == "tensorflow" and report["machine"]["cpu_count"] >= 1
    assert report["machine"]["versions"]["keras"]
    config = report["config"]
    assert config["batch_size"] == 8 and config["steps"] == 2 and config["warmup_steps"] == 1
    assert config["fit_jit_compile"] in (True, False)
    assert set(report["presets"]) == {"cifar", "imagenet"}
    for name, preset in report["presets"].items():
        assert preset["image_size"] == (32 if name == "cifar" else 48)
        assert preset["source_size"] == (32 if name == "cifar" else 56)
        assert preset["decode_s"] > 0
        methods = preset["methods"]
        assert list(methods)[0] == "ours" and set(methods) == {"ours", "keras_cv", "torchvision"}
        assert set(methods["ours"]["modes"]) == {"in_model_xla", "in_model_graph", "tf_data"}
        for mode in methods["ours"]["modes"].values():
            assert_measured(mode)
        for reference in ("keras_cv", "torchvision"):
            method = methods[reference]
            # Either measured in every mode it has, or reported as not installed.
            assert method["status"] in ("measured", "not installed"), method
            if method["status"] == "not installed":
                assert method["reason"] and preset["ratios"][reference] is None
                assert f"{reference:<13}not installed: " in result.stdout
                continue
            assert method["modes"]
            for mode, timing in method["modes"].items():
                if (
                    reference == "keras_cv"
                    and mode == "in_model_xla"
                    and timing["status"] == "failed"
                ):
                    continue  # keras-cv layers XLA cannot compile: reported, not timed
                assert_measured(timing)
            ratio = preset["ratios"][reference]
            assert ratio["best"] > 0 and math.isfinite(ratio["best"])
        assert ("ours / keras_cv: " in result.stdout) and ("ours / torchvision: " in result.stdout)
    assert report["peak_rss_mb"] > 0
    assert "model.fit on this machine runs the augmentation as" in result.stdout


@pytest.mark.parametrize("preset, size", [("cifar", 32), ("imagenet", 40)])
def test_ours_makes_two_different_float_views(cifar_images, preset, size):
    images = cifar_images[0][:6]
    layer = augment_recipes.ours_layer(preset, size)
    views = np.asarray(augment_recipes.make_two_views(layer)(images))
    assert views.shape == (12, size, size, 3) and views.dtype == np.float32
    assert views.min() >= 0.0 and views.max() <= 1.0
    view_a, view_b = views[:6], views[6:]
    assert all(np.abs(view_a[i] - view_b[i]).mean() > 1e-3 for i in range(6))


@pytest.mark.process
def test_torchvision_recipe_makes_two_different_float_views():
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    # In a fresh process: with TensorFlow (imported by this test session)
    # loaded first, importing torchvision.ops segfaults (torch 2.14, TF 2.21).
    code = """
from benchmarks import augment_recipes as module
module.import_torch_first()
from PIL import Image
from tests.conftest import decode_cifar
transform, description = module.torchvision_transform("cifar", 32)
assert "SimCLRTransform" in description or "torchvision" in description, description
view_a, view_b = transform(Image.fromarray(decode_cifar("train", 1)[0][0]))
for view in (view_a, view_b):
    assert tuple(view.shape) == (3, 32, 32) and str(view.dtype) == "torch.float32", view.shape
    assert 0.0 <= float(view.min()) and float(view.max()) <= 1.0
assert float((view_a - view_b).abs().mean()) > 1e-3
print("ok")
"""
    assert "ok" in run_in_subprocess(code, backend="tensorflow")


def test_keras_cv_recipe_makes_float_views(cifar_images):
    pytest.importorskip("keras_cv")
    views = np.asarray(augment_recipes.keras_cv_augmenter("imagenet", 40)(cifar_images[0][:4]))
    assert views.shape == (4, 40, 40, 3) and views.dtype == np.float32
    assert views.min() >= -1e-5 and views.max() <= 1.0 + 1e-5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--presets", "svhn"], "--presets"),
        (["--references", "timm"], "--references"),
        (["--modes", "eager"], "--modes"),
        (["--steps", "0"], "--steps"),
        (["--batch_size", "64", "--num_images", "32"], "batch_size"),
    ],
)
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        augment_throughput.parse_args(argv)
    assert message in capsys.readouterr().err
