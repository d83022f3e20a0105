"""The default recipe backs off when its deployed file misses max_accuracy_drop: a target whose
default recipe prunes the hidden layer to 97% (a wreck) tries gentler recipes within its time
budget (the same recipe distilled, then lower sparsity), reports every attempt and deploys
the best that meets the budgets."""

import json

import numpy as np
import pytest

from edgeprune.pipeline import ExportOptions, run_export

pytestmark = pytest.mark.slow

TARGET = """
name = "tight"
description = "this machine, a tight accuracy budget"
arch = "x86_64"
cpu = "x86-64"

[runtime]
engine = "litert"

[device]
kind = "local"

[recipe]
prune = { schedule = "constant", final_sparsity = 0.97 }
finetune = { epochs = 1 }
quantize = ["int8"]
formats = ["tflite"]
backoff = { sparsity_factors = [0.3], finetune_factor = 1.0, max_extra_factor = 20.0 }

[budgets]
max_accuracy_drop = 0.03
"""


@pytest.fixture(scope="module")
def inputs(keras, tiny_data, tmp_path_factory):
    from conftest import build_conv_dense

    folder = tmp_path_factory.mktemp("backoff")
    model = build_conv_dense(keras)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(tiny_data.x_train, tiny_data.y_train, epochs=8, batch_size=32, verbose=0)
    model.save(folder / "model.keras")
    d = tiny_data
    np.savez(folder / "data.npz", x_train=np.concatenate([d.x_train, d.x_val]),
             y_train=np.concatenate([d.y_train, d.y_val]), x_test=d.x_test, y_test=d.y_test)
    (folder / "tight.toml").write_text(TARGET)
    return folder


def test_default_recipe_backs_off_to_a_gentler_recipe_and_reports_every_attempt(inputs, tmp_path):
    logged: list[str] = []
    result = run_export(ExportOptions(target=str(inputs / "tight.toml"), out_dir=tmp_path,
                                      model=str(inputs / "model.keras"), data=inputs / "data.npz",
                                      log=logged.append))
    report = result.report.to_dict()
    backoff = report["compression"]["backoff"]
    assert backoff["ran"] and backoff["chosen"] == "sparsity 29%", backoff
    first, distilled, *rest = backoff["attempts"]
    assert first["label"] == "as exported" and first["failed_budgets"] == ["max_accuracy_drop"]
    assert distilled["label"] == "distilled" and distilled["failed_budgets"] == ["max_accuracy_drop"]
    assert distilled["changes"] == ["finetune.distill.alpha: none -> 0.7",
                                    "finetune.distill.temperature: none -> 4"]
    assert rest[0]["state"] == "meets every budget" and rest[0]["changes"] == [
        "prune.final_sparsity: 0.97 -> 0.29"]
    assert len(rest) == 1                                   # stopped at the first that met
    assert report["recipe"]["prune"]["final_sparsity"] == 0.29 and report["verdict"] == "pass"
    assert report["recipe"]["finetune"]["distill"] is None
    assert any(line.startswith("warning: layer 'fc' is 97") for line in logged)   # the wreck, named
    assert any(line.startswith("back-off 2/3: sparsity 29%: meets every budget") for line in logged)
    on_disk = json.loads((result.out_dir / "report.json").read_text())
    assert on_disk["compression"]["backoff"] == backoff
    assert sorted(p.name for p in result.out_dir.iterdir()) == ["manifest.json", "model_int8.tflite",
                                                                "report.html", "report.json"]
