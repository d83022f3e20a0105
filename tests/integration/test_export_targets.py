"""Whole exports for the microcontroller and rules-only targets (few epochs)."""

import json
import re

import pytest

from edgeprune.pipeline import ExportOptions, run_export

pytestmark = pytest.mark.slow


def _run(target, out, **kw):
    return run_export(ExportOptions(target=target, out_dir=out, train_epochs=10, finetune_epochs=1, **kw))


def test_export_cortex_m4_measures_arena_and_writes_c_sources(tmp_path):
    result = _run("cortex-m4", tmp_path, c_symbol="digits_model")
    folder = result.out_dir
    report = json.loads((folder / "report.json").read_text())
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")
    m = int8["measurements"]
    assert "tflite-micro" in m["accuracy"]["by"]
    assert 1000 < m["arena_bytes"]["value"] < 64 * 1024
    assert m["flash_bytes"]["value"] == (folder / "model_int8.tflite").stat().st_size
    assert m["host_agreement"]["value"] >= 0.99
    assert {b["name"] for b in report["budgets"]} >= {"max_arena_bytes", "max_flash_bytes"}
    header = (folder / "firmware" / "digits_model.h").read_text()
    macro = int(re.search(r"#define DIGITS_MODEL_ARENA_BYTES\D+(\d+)", header).group(1))
    assert macro >= m["arena_bytes"]["value"] and macro % 16 == 0
    source = (folder / "firmware" / "digits_model.c").read_text()
    body = source[source.index("{", source.index("digits_model[")) + 1:]
    values = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]{2})", body[: body.index("};")]))
    assert values == (folder / "model_int8.tflite").read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    c_entry = next(a for a in manifest["artifacts"] if a["format"] == "c_array")
    assert c_entry["parent"] == "int8.tflite" and (folder / c_entry["file"]).is_file()


def test_export_coral_checks_rules_and_says_compiler_absent(tmp_path):
    result = _run("coral-edgetpu", tmp_path)
    report = result.report.to_dict()
    compat = next(b for b in report["budgets"] if b["name"] == "compatibility")
    assert compat["verdict"] == "pass", compat
    assert any("compiler is not available here" in line for line in report["advice"])


@pytest.mark.qemu
def test_export_rpi4_counts_instructions_on_the_emulated_board(tmp_path):
    recipe = tmp_path / "int8-only.toml"
    recipe.write_text('quantize = ["int8"]\nformats = ["tflite"]\n')
    result = _run("rpi4", tmp_path / "out", recipe=recipe)
    report = result.report.to_dict()
    m = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")["measurements"]
    assert "qemu-aarch64" in m["accuracy"]["by"] and "cortex-a72" in m["accuracy"]["by"]
    ins = m["instructions_per_invoke"]
    assert ins["method"] == "measured" and ins["value"] > 10_000 and ins["spread"] == 0.0
    est = m["latency_estimate_ms"]
    assert est["method"] == "estimated" and est["value"] == pytest.approx(ins["value"] * 0.9 / 1.5e6)
    agreement = m["host_agreement"]
    assert agreement["passed"] and agreement["expected"].startswith("within one output quantization step")
    assert m["integrity"]["passed"] and any(c["against"].startswith("this machine")
                                            for c in m["integrity"]["checks"])
    assert "not the target" in m["latency_ms"]["by"]
    latency_budget = next(b for b in report["budgets"] if b["name"] == "max_latency_ms")
    assert latency_budget["value"] == est["value"] and "estimated" in latency_budget["note"]
