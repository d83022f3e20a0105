"""The Python API on an in-memory model and numpy arrays (edgeprune/api.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import edgeprune
from edgeprune.api import _data, _recipe_path
from edgeprune.errors import InputError


def test_import_edgeprune_stays_light():
    code = "import sys, edgeprune; edgeprune.export; edgeprune.check; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_api_functions_stay_callable_when_modules_of_same_name_are_imported():
    import edgeprune.bench  # noqa: F401
    import edgeprune.check.compare  # noqa: F401
    import edgeprune.export.encoding  # noqa: F401

    assert callable(edgeprune.export) and callable(edgeprune.check) and callable(edgeprune.bench)
    assert edgeprune.check.check_files is not None       # still the package as well
    assert edgeprune.bench.bench_artifact is not None    # and the module


def test_data_rejects_unknown_shape_with_input_error():
    with pytest.raises(InputError, match="x_train, y_train, x_test, y_test"):
        _data(object())


def test_data_accepts_dict_of_arrays_with_val():
    x, y = np.zeros((4, 2)), np.zeros(4)
    splits = _data({"x_train": x, "y_train": y, "x_test": x, "y_test": y, "x_val": x, "y_val": y})()
    assert set(splits) == {"train", "val", "test"}


def test_recipe_mapping_written_as_toml_turns_steps_off(tmp_path):
    from edgeprune.recipe import load_recipe
    from edgeprune.targets import load_target

    path = _recipe_path({"prune": None, "finetune": {"epochs": 1}, "quantize": ["float32", "int8"]}, tmp_path)
    recipe = load_recipe(path, base=load_target("host").recipe)
    assert recipe.prune is None and recipe.finetune.epochs == 1 and recipe.quantize == ("float32", "int8")


@pytest.mark.slow
def test_export_in_memory_model_and_arrays_then_check_and_bench(tmp_path, tiny_cnn, tiny_data):
    data = (tiny_data.x_train, tiny_data.y_train, tiny_data.x_test, tiny_data.y_test)
    lines = []
    result = edgeprune.export(tiny_cnn, data, target="host", out_dir=tmp_path, seed=0,
                              recipe={"prune": None, "finetune": {"epochs": 0},
                                      "quantize": ["float32", "int8"], "formats": ["tflite"]},
                              log=lines.append)
    assert result.out_dir == tmp_path / "host" and result.deploy == tmp_path / "host" / "model_int8.tflite"
    assert result.deploy.is_file() and set(result.artifacts) == {"float32.tflite", "int8.tflite"}
    assert result.report == json.loads((result.out_dir / "report.json").read_text())
    assert result.verdict in ("pass", "fail")
    assert result.figure("int8.tflite", "accuracy") > result.figure("baseline.keras", "accuracy") - 0.1 > 0.2
    assert result.report["compression"]["recipe_sources"]["prune"].startswith("--recipe ")
    assert any("baseline accuracy" in line for line in lines)
    written = edgeprune.check(result, tmp_path / "baseline.json", update=True)
    assert written.targets == ["host"]
    checked = edgeprune.check(result, tmp_path / "baseline.json", remeasure=False)
    assert not checked.regressions and checked.passed == result.passed
    bench = edgeprune.bench(result.deploy, target="host", repeats=5)
    assert bench["latency_ms"]["value"] > 0
