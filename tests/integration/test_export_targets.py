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
    model_bytes = (folder / "model_int8.tflite").stat().st_size
    assert m["flash_bytes"]["model_bytes"] == model_bytes      # linked: TFLM's code + the model
    assert m["flash_bytes"]["value"] == model_bytes + m["flash_bytes"]["code_bytes"]
    assert m["host_agreement"]["value"] >= 0.99
    # the real kernels on the emulated Cortex-M4: exact counts, bit-exact outputs, per op
    assert m["instructions_per_invoke"]["repeat_exact"] and m["mcu_agreement"]["bit_exact"]
    assert [r["op"] for r in m["ops"]["rows"]][:2] == ["CONV_2D", "MAX_POOL_2D"]
    assert m["latency_estimate_ms"]["method"] == "estimated"
    budgets = {b["name"]: b for b in report["budgets"]}
    assert set(budgets) >= {"max_arena_bytes", "max_flash_bytes", "max_ram_bytes", "max_latency_ms"}
    assert budgets["max_latency_ms"]["value"] == m["latency_estimate_ms"]["value"]
    assert budgets["max_ram_bytes"]["value"] == m["ram_bytes"]["value"]
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
    from edgeprune.devices.cost import estimate_ms
    from edgeprune.targets import load_target

    recipe = tmp_path / "int8-only.toml"
    recipe.write_text('quantize = ["int8"]\nformats = ["tflite"]\n')
    result = _run("rpi4", tmp_path / "out", recipe=recipe)
    report = result.report.to_dict()
    m = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")["measurements"]
    # accuracy from this machine's run of the same file, the board's outputs checked on a sample
    assert m["accuracy"]["by"].startswith("ai_edge_litert") and "cortex-a72" in m["accuracy"]["by"]
    assert m["host_agreement"]["samples"] == 32 and "32-input sample" in m["accuracy"]["by"]
    agreement = m["host_agreement"]
    assert agreement["passed"] and agreement["expected"].startswith("within one output quantization step")
    assert m["integrity"]["passed"] and any(c["against"].startswith("this machine")
                                            for c in m["integrity"]["checks"])
    ins = m["instructions_per_invoke"]
    assert ins["method"] == "measured" and ins["value"] > 10_000 and ins["spread"] < 0.001
    assert sum(ins["instructions_by_class"].values()) in ins["samples"]
    est, profile = m["latency_estimate_ms"], load_target("rpi4")
    assert est["method"] == "estimated" and est["threads"] == 4
    assert est["calibration"] == profile.calibration.name and est["error_band"]["rows"] >= 6
    assert est["value"] == pytest.approx(estimate_ms(ins["instructions_by_class"], profile.calibration,
                                                     4, est["weight_bytes"]), abs=1e-4)
    ops = m["ops"]
    assert ops["method"] == "estimated" and [r["op"] for r in ops["rows"]][:1] == ["QUANTIZE"]
    assert all(r["instructions"] > 0 and r["estimate_ms"] > 0 for r in ops["rows"])
    assert est["value"] < ops["sum_of_ops"] < 3 * est["value"]
    assert "latency_ms" not in m and "never gated" in m["host_latency_ms"]["note"]
    latency_budget = next(b for b in report["budgets"] if b["name"] == "max_latency_ms")
    assert latency_budget["value"] == est["value"] and "estimated" in latency_budget["note"]


def test_export_two_targets_compresses_once_and_writes_summary(tmp_path):
    from edgeprune.fleet import run_targets
    from edgeprune.progress import Reporter, activate
    from edgeprune.report.fleet_table import render_targets

    # The same compression steps for both targets (the reference model's host recipe, a
    # search's choice, would otherwise differ from its recipe for the other targets).
    shared = tmp_path.parent / f"{tmp_path.name}-shared.toml"
    shared.write_text("prune = { final_sparsity = 0.7 }\ncluster = false\n")
    lines = []
    with activate(Reporter(sink=lines.append, tty=False)) as log:
        opts = ExportOptions(target="host", out_dir=tmp_path, train_epochs=10, finetune_epochs=1, recipe=shared,
                             log=log)
        fleet = run_targets(opts, ["host", "coral-edgetpu"], log=log)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coral-edgetpu", "host", "summary.html", "summary.json"]
    reports = {t: json.loads((tmp_path / t / "report.json").read_text()) for t in ("host", "coral-edgetpu")}
    assert sum("reusing its model" in line for line in lines) == 1        # trained once, for host
    assert sum("epoch 1/1" in line for line in lines) == 1
    assert reports["host"]["compression"]["sparsity"] == reports["coral-edgetpu"]["compression"]["sparsity"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == fleet.summary and set(summary["targets"]) == {"host", "coral-edgetpu"}
    for name, entry in summary["targets"].items():
        assert entry["verdict"] == reports[name]["verdict"] and entry["report"].endswith(f"{name}/report.json")
    codes = {0 if r["verdict"] == "pass" else 3 for r in reports.values()}
    assert fleet.exit_code == max(codes) == summary["exit_code"]
    table = render_targets(summary)
    assert table.splitlines()[2].startswith("host ") and "coral-edgetpu" in table
    page = (tmp_path / "summary.html").read_text()
    assert "<svg" in page and "coral-edgetpu" in page and "host" in page
