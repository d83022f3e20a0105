"""The terminal table: units per value, separate latency columns, collapsed notes, legend,
wrapped advice, the recipe's sources; and the table comparing targets."""

import pytest

from edgeprune.report import units
from edgeprune.report.fleet_table import render_targets
from edgeprune.report.schema import figure
from edgeprune.report.table import render
from check_reports import make_report


@pytest.mark.parametrize("ms, shown", [(0.0045, "4.5 us"), (0.23, "230 us"), (12.34, "12.3 ms"),
                                       (1234.0, "1.23 s"), (None, "-")])
def test_duration_ms_picks_unit(ms, shown):
    assert units.duration_ms(ms) == shown


@pytest.mark.parametrize("n, shown", [(812, "812 B"), (21_064, "20.6 KiB"), (2_000_000, "1.91 MiB"),
                                      (1_500_000_000, "1,430.51 MiB")])
def test_size_bytes_picks_unit_with_thousands_separators(n, shown):
    assert units.size_bytes(n) == shown


def test_render_shows_host_and_target_latency_in_separate_columns():
    report = make_report("rpi4")
    for art in report["artifacts"][1:]:
        if "instructions_per_invoke" in art["measurements"]:
            art["measurements"]["instructions_per_invoke"]["spread"] = 0.0
    int8 = report["artifacts"][2]["measurements"]
    int8["latency_estimate_ms"] = figure(1.82, "ms", "cost model", method="estimated", threads=4)
    text = render(report, width=100)
    header = text.splitlines()[0]
    assert "host latency" in header and "estimate" in header and " latency " not in header.replace(
        "host latency", "")
    row = next(line for line in text.splitlines() if line.startswith("int8.tflite"))
    assert "1.82 ms (4T)" in row and " us (" in row          # 0.23 ms is shown as microseconds
    assert "host latency: median on this machine" in text


def test_render_collapses_repeated_notes_and_wraps_advice():
    report = make_report("host")
    for art in report["artifacts"][1:]:
        art["measurements"]["sparsity"] = figure({"conv": 0.5, "fc": 0.7}, "fraction", "read back")
    report["advice"] = ["word " * 150, "word " * 150]
    lines = render(report, width=80).splitlines()
    notes = [line for line in lines if "zero weights read back" in line]
    assert len(notes) == 1 and notes[0].startswith("float32.tflite, int8.tflite, int8.onnx:")
    advice = [line for line in lines if line.startswith("advice: ")]
    assert len(advice) == 1 and all(len(line) <= 80 for line in lines if "word" in line)
    assert "agree: share of test samples" in "\n".join(lines)


def test_render_budgets_in_units():
    text = render(make_report("host"), width=100)
    row = next(line for line in text.splitlines() if line.startswith("max_size_bytes"))
    assert "1.91 MiB" in row and "14.5 KiB" in row and "e+" not in row


def test_render_shows_recipe_sources_once():
    report = make_report("host")
    report["recipe"] = {"seed": 0, "prune": {"structure": "unstructured", "final_sparsity": 0.7,
                                             "scope": "per_layer"},
                        "finetune": {"epochs": 1, "batch_size": 32, "learning_rate": 0.001},
                        "quantize": ["int8"], "deploy": "int8.tflite"}
    report["compression"]["recipe_sources"] = {"seed": "target host", "prune": "model recipe r.toml",
                                               "finetune": "model recipe r.toml", "finetune.epochs": "--epochs",
                                               "quantize": "target host", "deploy": "target host"}
    text = render(report, width=100)
    assert "recipe from --epochs: 1 fine-tuning epochs" in text
    assert text.count("recipe from model recipe r.toml:") == 1


def test_render_targets_compares_side_by_side_with_errors():
    summary = {"verdict": "error", "exit_code": 4, "targets": {
        "host": {"verdict": "pass", "exit_code": 0, "deploy": "int8.tflite", "report": "dist/host/report.json",
                 "primary_metric": "accuracy", "budgets": [],
                 "figures": {"size_bytes": 21_064, "accuracy": 0.94, "latency_ms": 0.0096}},
        "rpi4": {"verdict": "error", "exit_code": 4, "error": "the emulator did not start\nmore"}}}
    lines = render_targets(summary).splitlines()
    assert lines[0].split()[:3] == ["target", "verdict", "deploy"]
    assert "9.6 us" in lines[2] and "20.6 KiB" in lines[2]
    assert "ERROR (exit 4)" in lines[3] and "the emulator did not start" in lines[3]
    assert lines[-1] == "verdict: ERROR (2 targets; exit 4)"
