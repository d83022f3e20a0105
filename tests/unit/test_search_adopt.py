"""Adopting a search's choice as a reference model's default recipe for a target, and the
record of the search that the bundled per-target recipes keep."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeprune import reference
from edgeprune.errors import ConfigError
from edgeprune.recipe import ClusterSpec, Recipe, load_recipe
from edgeprune.search.adopt import adopt, base_recipe, main, widen
from edgeprune.search.choices import candidate, space_for
from edgeprune.search.recipe_toml import write_recipe

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"structure": "unstructured", "sparsity": 0.95, "scope": "global", "floor": 0.7, "finetune": 6,
          "clusters": 16, "qat": False, "deploy": "int8.tflite", "int8_io": False, "per_tensor": True}


def _search_out(tmp_path: Path, verdict: str = "pass") -> tuple[Path, object]:
    """A folder shaped like `edgeprune search`'s OUT/host: report.json with a search section
    and the chosen (narrowed) recipe.toml."""
    base = base_recipe("digits", "host")
    searched = candidate(base, PARAMS).recipe
    out = tmp_path / "host"
    out.mkdir()
    write_recipe(searched, out / "recipe.toml")
    trial = {"number": 1, "label": "prune 95% global floor 0.7, x6 epochs, cluster 16, int8.tflite per-tensor",
             "gzip_bytes": 3139, "size_ratio": 16.7, "metric": 0.9750, "baseline_metric": 0.9806,
             "sha256": "ab" * 32, "params": PARAMS}
    section = {"trials": [{"number": 0, "label": "default"}, trial], "seconds": 300.0, "metric": "accuracy",
               "chosen": {"trial": 1, "reproduce": "edgeprune export --target host --recipe r.toml --seed 0"}}
    (out / "report.json").write_text(json.dumps({"target": {"name": "host"}, "verdict": verdict,
                                                 "deploy": "int8.tflite", "search": section}))
    return out, searched


def test_adopted_recipe_makes_every_artifact_and_narrows_back_to_the_searched_one(tmp_path):
    out, searched = _search_out(tmp_path)
    text, record = adopt(out, "digits", write=False)
    (tmp_path / "adopted.toml").write_text(text)
    adopted = load_recipe(tmp_path / "adopted.toml")
    base = base_recipe("digits", "host")
    assert adopted.quantize == base.quantize and adopted.formats == base.formats
    assert adopted.deploy == "int8.tflite" and not adopted.int8_per_channel
    clustering = base.cluster.epochs if base.cluster else max(1, base.finetune.epochs // 2)
    assert adopted.cluster == ClusterSpec(number_of_clusters=16, epochs=clustering * 6)   # x6 fine-tuning
    assert adopted.prune.final_sparsity == 0.95 and adopted.finetune.epochs == 6 * base.finetune.epochs
    assert widen(searched, base) == adopted
    assert "trial 1" in text and "host.search.json" in text
    assert record["search"]["chosen"]["trial"] == 1 and record["chosen_sha256"] == "ab" * 32
    import platform

    assert record["made_on"]["machine"] == platform.machine() and record["made_on"]["tensorflow"]


def test_adopt_refuses_a_choice_that_misses_a_budget_and_a_folder_that_is_no_search(tmp_path):
    out, _ = _search_out(tmp_path, verdict="fail")
    with pytest.raises(ConfigError, match="misses a budget"):
        adopt(out, "digits", write=False)
    report = json.loads((out / "report.json").read_text())
    report["verdict"] = "pass"
    report["search"]["trials"][1]["params"] = {**PARAMS, "finetune": 3}     # not what the search made
    (out / "report.json").write_text(json.dumps(report))
    with pytest.raises(ConfigError, match="did not start from the recipe"):
        adopt(out, "digits", write=False)
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--model", "digits"]) == 2


def test_written_recipe_is_what_the_export_of_the_model_for_that_target_reads(tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "digits", models / "digits",
                    ignore=shutil.ignore_patterns("recipes", "__pycache__"))
    monkeypatch.setattr(reference, "models_dir", lambda: models)
    assert reference.recipe_path("digits", "host") == models / "digits" / "recipe.toml"
    out, _ = _search_out(tmp_path)
    adopt(out, "digits", write=True)
    assert reference.recipe_path("digits", "host") == models / "digits" / "recipes" / "host.toml"
    assert reference.recipe_path("digits", "rpi4") == models / "digits" / "recipe.toml"
    assert json.loads((models / "digits" / "recipes" / "host.search.json").read_text())["target"] == "host"


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*/recipes/*.toml")), ids=lambda p: p.stem)
def test_bundled_per_target_recipes_are_the_recorded_searches_choice(path):
    """Each models/NAME/recipes/TARGET.toml is the recorded search's chosen trial, widened."""
    record = json.loads(path.with_suffix(".search.json").read_text())
    model, target = path.parent.parent.name, path.stem
    assert record["target"] == target and record["model"] == model
    chosen = next(t for t in record["search"]["trials"] if t["number"] == record["search"]["chosen"]["trial"])
    base = Recipe.model_validate(_tuples(record["base"]))     # the recipe the search started from
    searched = candidate(base, chosen["params"]).recipe
    assert load_recipe(path) == widen(searched, base)
    assert chosen["violation"] == 0 and chosen["params"]["deploy"] in space_for(base).deploys


def _tuples(value):
    """JSON arrays as the tuples the strict recipe model holds."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
