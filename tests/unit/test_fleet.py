"""Several targets in one run: which recipes share a compressed model, where values came from."""

import pytest

from edgeprune.errors import ConfigError
from edgeprune.fleet import compression_key, run_targets
from edgeprune.pipeline import ExportOptions
from edgeprune.recipe_sources import after_backoff, trace
from edgeprune.targets import load_target


class _Src:
    sha256 = "a" * 64


class _Data:
    sha256 = "b" * 64


def test_compression_key_equal_when_only_export_settings_differ():
    host, m4 = load_target("host").recipe, load_target("cortex-m4").recipe
    assert host.quantize != m4.quantize                       # the targets export differently ...
    assert compression_key(_Src, host, _Data) == compression_key(_Src, m4, _Data)  # ... from one model


def test_compression_key_differs_with_seed_or_sparsity():
    host = load_target("host").recipe
    key = compression_key(_Src, host, _Data)
    assert compression_key(_Src, host.model_copy(update={"seed": 1}), _Data) != key
    prune = host.prune.model_copy(update={"final_sparsity": 0.5})
    assert compression_key(_Src, host.model_copy(update={"prune": prune}), _Data) != key


def test_run_targets_exits_2_when_target_named_twice(tmp_path):
    with pytest.raises(ConfigError, match="named twice"):
        run_targets(ExportOptions(target="host", out_dir=tmp_path), ["host", "host"])
    assert list(tmp_path.iterdir()) == []


def test_trace_names_last_layer_per_key(tmp_path):
    model = tmp_path / "model.toml"
    model.write_text("finetune = { epochs = 8 }\nprune = { final_sparsity = 0.7 }\n")
    given = tmp_path / "given.toml"
    given.write_text("prune = { final_sparsity = 0.5 }\n")
    recipe = load_target("host").recipe
    sources = trace("host", model, given, 3, None, type(recipe).model_fields)
    assert sources["finetune"] == f"model recipe {model}" and sources["prune"] == f"--recipe {given}"
    assert sources["seed"] == "--seed" and sources["deploy"] == "target host"
    later = after_backoff(sources, recipe, recipe.model_copy(update={"prune": None}))
    assert later["prune"] == "back-off" and later["seed"] == "--seed"
