"""edgeprune check: which figures are gated and how each is judged, tolerances, bundles,
bad input, and what grew. Reports are built in tests/check_reports.py."""

from __future__ import annotations

import copy

import pytest
from check_reports import ARTIFACTS, PROFILE_TOLERANCES, make_report, measurement, row

from edgeprune.check import RULES, check_reports
from edgeprune.errors import ConfigError, InputError
from edgeprune.report.schema import SCHEMA_VERSION, figure


@pytest.fixture
def base() -> dict:
    return make_report()


@pytest.fixture
def board() -> dict:
    return make_report("rpi4")


# ------------------------------------------------------------------ verdicts


def test_check_reports_passes_when_reports_identical(base, board):
    for report in (base, board):
        result = check_reports(copy.deepcopy(report), report)
        assert result.passed and result.verdict == "pass"
        assert not result.regressions and not result.improvements
        assert {r.verdict for r in result.rows} <= {"unchanged", "shown"}


def test_check_reports_gates_only_figures_of_the_file_on_its_target(board):
    # an emulated board: host wall-clock 3x slower (a loaded machine) is shown, never gated
    rerun = make_report("rpi4", seed=4, latency_scale=3.0)
    result = check_reports(rerun, board)
    assert result.passed, [(r.artifact, r.figure) for r in result.regressions]
    host = row(result, "host_latency_ms", target="rpi4")
    assert host.verdict == "shown" and "never gated" in host.detail
    assert host.delta_rel > 1.5
    assert "latency_ms" not in {r.figure for r in result.rows}


def test_check_reports_catches_size_regression_when_one_byte_larger(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    result = check_reports(rerun, base)
    r = row(result, "size_bytes")
    assert r.verdict == "regressed" and r.delta == 1 and not result.passed
    assert r.tolerance == "size_bytes_rel=0 (profile)"
    assert [x.figure for x in result.regressions] == ["size_bytes"]


def test_check_reports_catches_gzip_growth_when_raw_size_unchanged(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.onnx", "gzip_bytes")["value"] += 3
    assert row(check_reports(rerun, base), "gzip_bytes", "int8.onnx").verdict == "regressed"


@pytest.mark.parametrize("drop, verdict", [(0.006, "regressed"), (0.003, "within")])
def test_check_reports_judges_accuracy_drop_against_points_tolerance(base, drop, verdict):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "accuracy")["value"] -= drop
    r = row(check_reports(rerun, base), "accuracy")
    assert r.verdict == verdict and r.delta == pytest.approx(-drop * 100)
    assert r.delta_text == f"{-drop * 100:+.2f} pt"


def test_check_reports_catches_f1_drop_when_beyond_tolerance(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "float32.tflite", "f1_macro")["value"] -= 0.01
    assert row(check_reports(rerun, base), "f1_macro", "float32.tflite").verdict == "regressed"


@pytest.mark.parametrize("growth, verdict", [(0.02, "regressed"), (0.005, "within")])
def test_check_reports_judges_instruction_growth_against_relative_tolerance(board, growth,
                                                                            verdict):
    rerun = copy.deepcopy(board)
    fig = measurement(rerun, "int8.tflite", "instructions_per_invoke")
    fig["value"] = round(fig["value"] * (1 + growth))
    r = row(check_reports(rerun, board), "instructions_per_invoke", target="rpi4")
    assert r.verdict == verdict


def test_check_reports_judges_each_instruction_class_against_the_total(board):
    classes = {"simd_int_mac": 800_000, "load_store": 300_000, "branch": 4_000}
    for rep in (board, rerun := copy.deepcopy(board)):
        for art in rep["artifacts"][1:]:
            art["measurements"]["instructions_by_class"] = figure(
                dict(classes), "instructions", "qemu-aarch64 plugin, classes")
    grown = measurement(rerun, "int8.tflite", "instructions_by_class")["value"]
    grown["branch"] *= 2                      # +4,000: 0.36% of the total, within 1%
    grown["load_store"] += 30_000             # +2.7% of the total: regressed
    result = check_reports(rerun, board)
    assert row(result, "instructions_by_class.branch", target="rpi4").verdict == "within"
    r = row(result, "instructions_by_class.load_store", target="rpi4")
    assert r.verdict == "regressed" and "of the total" in r.delta_text
    assert row(result, "instructions_by_class.simd_int_mac", target="rpi4").verdict == "unchanged"


@pytest.mark.parametrize("shape", ["figure", "mapping", "key of instructions_per_invoke"])
def test_check_reports_reads_instruction_classes_in_each_shape(board, shape):
    for rep in (board, rerun := copy.deepcopy(board)):
        counts = {"simd": 1_000_000, "scalar": 204_118 + (50_000 if rep is rerun else 0)}
        m = rep["artifacts"][2]["measurements"]
        if shape == "figure":
            m["instructions_by_class"] = figure(counts, "instructions", "qemu plugin")
        elif shape == "mapping":
            m["instructions_by_class"] = counts
        else:
            m["instructions_per_invoke"]["instructions_by_class"] = counts
    r = row(check_reports(rerun, board), "instructions_by_class.scalar", target="rpi4")
    assert r.verdict == "regressed" and r.delta == 50_000


def test_check_reports_reports_improvements_when_figures_got_better(board):
    rerun = copy.deepcopy(board)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] -= 1000
    measurement(rerun, "int8.tflite", "accuracy")["value"] += 0.01
    measurement(rerun, "int8.tflite", "instructions_per_invoke")["value"] -= 100_000
    result = check_reports(rerun, board)
    assert result.passed
    improved = {(r.artifact, r.figure) for r in result.improvements}
    assert {("int8.tflite", f) for f in ("size_bytes", "accuracy",
                                         "instructions_per_invoke")} <= improved


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.figure)
def test_rules_name_a_tolerance_and_validate_their_figure(rule):
    from edgeprune.check.models import parse_report
    from edgeprune.targets import Tolerances

    assert rule.tolerance in Tolerances.model_fields
    bad = make_report()
    bad["artifacts"][2]["measurements"][rule.figure] = {"value": "x", "unit": "",
                                                       "method": "measured", "by": "t"}
    with pytest.raises(InputError, match=f"measurements.{rule.figure}.value"):
        parse_report(bad, "r.json")


# ------------------------------------------------------------------ tolerances


def test_check_reports_uses_profile_tolerances_when_report_carries_them():
    loose = {**PROFILE_TOLERANCES, "size_bytes_rel": 0.01}
    base, rerun = make_report(tolerances=loose), make_report(tolerances=loose)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 100   # +0.67%
    r = row(check_reports(rerun, base), "size_bytes")
    assert r.verdict == "within" and r.tolerance == "size_bytes_rel=0.01 (profile)"


def test_check_reports_applies_overrides_when_given(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    assert not check_reports(rerun, base).passed
    result = check_reports(rerun, base, overrides={"size_bytes_rel": 0.001, "latency_rel": 0.3})
    assert result.passed
    assert row(result, "size_bytes").tolerance == "size_bytes_rel=0.001 (override)"
    assert result.tolerances["host"]["latency_rel"] == 0.3


def test_check_reports_says_default_when_profile_leaves_tolerance_out():
    base = make_report(tolerances={})
    assert row(check_reports(copy.deepcopy(base), base),
               "size_bytes").tolerance == "size_bytes_rel=0 (default)"


def test_check_reports_raises_config_error_when_override_unknown(base):
    with pytest.raises(ConfigError, match="latency_pct"):
        check_reports(base, base, overrides={"latency_pct": 0.1})


def test_check_reports_raises_config_error_when_profile_tolerance_invalid(base):
    bad = make_report(tolerances={"latency_rel": -1})
    with pytest.raises(ConfigError) as err:
        check_reports(bad, base, report_source="dist/host/report.json")
    assert "dist/host/report.json: target.tolerances.latency_rel" in str(err.value)


# ------------------------------------------------------------------ bad input


def test_check_reports_raises_config_error_when_schema_versions_differ(base):
    old = copy.deepcopy(base)
    old["schema_version"] = SCHEMA_VERSION - 1
    with pytest.raises(ConfigError) as err:
        check_reports(base, old, baseline_source="baselines/host.json")
    text = str(err.value)
    assert "baselines/host.json: schema_version" in text and "--update-baseline" in text


def test_check_reports_raises_input_error_when_artifact_missing(base):
    rerun = copy.deepcopy(base)
    rerun["artifacts"] = [a for a in rerun["artifacts"] if a["name"] != "int8.onnx"]
    with pytest.raises(InputError) as err:
        check_reports(rerun, base, report_source="dist/host/report.json")
    text = str(err.value)
    assert "'int8.onnx'" in text and "dist/host/report.json: artifacts" in text
    assert "--update-baseline" in text


def test_check_reports_raises_config_error_when_target_differs(base):
    with pytest.raises(ConfigError) as err:
        check_reports(make_report("rpi4"), base, baseline_source="baselines/host.json")
    text = str(err.value)
    assert "'rpi4'" in text and "host" in text and "baselines/host.json" in text


def test_check_reports_raises_config_error_when_runtime_settings_changed(base):
    rerun = copy.deepcopy(base)
    rerun["target"]["threads"] = 4
    with pytest.raises(ConfigError, match="threads: 1 -> 4"):
        check_reports(rerun, base)


def test_check_reports_raises_input_error_when_value_not_a_number(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] = "14k"
    with pytest.raises(InputError, match="artifact 'int8.tflite': measurements.size_bytes.value"):
        check_reports(rerun, base)


def test_check_reports_raises_input_error_when_not_a_report(base):
    with pytest.raises(InputError, match="not a report"):
        check_reports({"host": {"artifacts": []}}, base)


def test_check_reports_fails_when_baseline_figure_missing_from_report(board):
    rerun = copy.deepcopy(board)
    del measurement(rerun, "int8.tflite", "instructions_per_invoke")["value"]
    r = row(check_reports(rerun, board), "instructions_per_invoke", target="rpi4")
    assert r.verdict == "missing" and r.failed


def test_check_reports_fails_when_figure_measured_differently(board):
    rerun = copy.deepcopy(board)
    measurement(rerun, "int8.tflite", "instructions_per_invoke")["method"] = "estimated"
    r = row(check_reports(rerun, board), "instructions_per_invoke", target="rpi4")
    assert r.verdict == "incomparable" and "method" in r.detail


def test_check_reports_passes_with_new_rows_when_report_has_new_artifact_and_figure(base):
    rerun = copy.deepcopy(base)
    extra = copy.deepcopy(rerun["artifacts"][-1])
    extra["name"] = "float16.tflite"
    rerun["artifacts"].append(extra)
    rerun["artifacts"][2]["measurements"]["arena_bytes"] = figure(30_000, "bytes", "tflm")
    result = check_reports(rerun, base)
    assert result.passed
    assert row(result, "(artifact)", "float16.tflite").verdict == "new"
    assert row(result, "arena_bytes").verdict == "new"


def test_check_reports_fails_when_a_report_budget_failed(base):
    rerun = copy.deepcopy(base)
    rerun["budgets"][0].update(value=None, verdict="not_measured")
    result = check_reports(rerun, base)
    assert not result.regressions and not result.passed
    assert [b["name"] for _, b in result.failed_budgets] == ["max_size_bytes"]


# ------------------------------------------------------------------ bundles


def test_check_reports_matches_targets_when_given_bundles():
    host, rpi = make_report("host"), make_report("rpi4")
    rerun = [make_report("host", seed=1), make_report("rpi4", seed=1)]
    measurement(rerun[1], "int8.tflite", "size_bytes")["value"] += 1
    result = check_reports(rerun, {"host": host, "rpi4": rpi})
    assert result.targets == ["host", "rpi4"]
    assert [(r.target, r.figure) for r in result.regressions] == [("rpi4", "size_bytes")]


def test_check_reports_checks_one_target_when_baseline_bundle_holds_more(base):
    result = check_reports(make_report(seed=2), {"host": base, "rpi4": make_report("rpi4")})
    assert result.targets == ["host"] and result.passed


def test_check_reports_ignores_unreadable_entry_of_another_target(base):
    newer = {**make_report("rpi4"), "schema_version": SCHEMA_VERSION + 1, "artifacts": "?"}
    result = check_reports(make_report(seed=2), {"host": base, "rpi4": newer})
    assert result.targets == ["host"] and result.passed


def test_check_reports_raises_input_error_when_bundle_key_mismatches_target(base):
    with pytest.raises(InputError, match=r"baseline\['host'\]: the entry 'host' holds .* 'rpi4'"):
        check_reports(base, {"host": make_report("rpi4")})


def test_check_reports_raises_input_error_when_bundle_repeats_a_target(base):
    with pytest.raises(InputError, match="appears twice"):
        check_reports([base, copy.deepcopy(base)], base)


# ------------------------------------------------------------------ growth


def test_check_reports_names_tensor_and_op_that_grew(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 4096
    bd = measurement(rerun, "int8.tflite", "breakdown")
    bd["tensors"]["sequential/dense/MatMul"] += 4096
    bd["tensors"]["sequential/dense_1/MatMul"] = 512
    bd["ops"]["FULLY_CONNECTED"] += 1
    result = check_reports(rerun, base)
    growth = result.growth_for("host", "int8.tflite")
    assert growth.tensors[0] == ("sequential/dense/MatMul", 8192, 12288)
    assert growth.tensors[1] == ("sequential/dense_1/MatMul", 0, 512)
    assert growth.ops == [("FULLY_CONNECTED", 2, 3)]
    assert result.growth_for("host", "int8.onnx") is None


def test_check_reports_matches_tensors_when_keras_numbered_the_model_differently(base):
    rerun = copy.deepcopy(base)
    tensors = measurement(rerun, "int8.tflite", "breakdown")["tensors"]
    tensors["sequential_1/dense/MatMul"] = tensors.pop("sequential/dense/MatMul") * 2
    tensors["sequential_1/conv2d/Conv2D"] = tensors.pop("sequential/conv2d/Conv2D")
    growth = check_reports(rerun, base).growth_for("host", "int8.tflite")
    assert growth.tensors == [("sequential_1/dense/MatMul", 8192, 16384)]


def test_check_reports_names_op_whose_cost_grew_when_reports_have_op_rows(board):
    def ops(costs):
        rows = [{"index": i, "op": op, "name": name, "instructions": n, "ms": None,
                 "estimate_ms": None, "share": n / sum(c[2] for c in costs)}
                for i, (op, name, n) in enumerate(costs)]
        return figure(None, "", "qemu-aarch64 plugin, per op", rows=rows)

    before = [("CONV_2D", "conv1", 500_000), ("CONV_2D", "conv2", 600_000),
              ("FULLY_CONNECTED", "logits", 100_000)]
    after = [("CONV_2D", "conv1", 500_000), ("CONV_2D", "conv2", 1_300_000),
             ("FULLY_CONNECTED", "logits", 100_000)]
    rerun = copy.deepcopy(board)
    board["artifacts"][2]["measurements"]["ops"] = ops(before)
    rerun["artifacts"][2]["measurements"]["ops"] = ops(after)
    measurement(rerun, "int8.tflite", "instructions_per_invoke")["value"] += 700_000
    result = check_reports(rerun, board)
    growth = result.growth_for("rpi4", "int8.tflite")
    assert growth.op_costs == [("CONV_2D conv2", 600_000, 1_300_000, "instructions")]
    assert "op CONV_2D conv2: 600,000 -> 1,300,000 instructions (+700,000)" in growth.lines()


@pytest.mark.parametrize("name", list(ARTIFACTS))
def test_check_reports_raises_input_error_when_breakdown_malformed(base, name):
    rerun = copy.deepcopy(base)
    measurement(rerun, name, "breakdown")["tensors"] = {"w": "8 KB"}
    with pytest.raises(InputError, match="breakdown.tensors.w"):
        check_reports(rerun, base)


def test_check_reports_gates_regression_and_per_output_metrics_when_they_worsen(board):
    # a regression head's error (lower is better) and a multi-output model's per-output accuracy
    for report in (board,):
        for art in report["artifacts"]:
            art["measurements"]["mse"] = figure(0.040, "mse", "x")
            art["measurements"]["digit/accuracy"] = figure(0.900, "fraction", "x")
    worse = copy.deepcopy(board)
    measurement(worse, "int8.tflite", "mse")["value"] = 0.043          # +7.5% > metric_rel 5%
    measurement(worse, "int8.tflite", "digit/accuracy")["value"] = 0.880  # -2 points > 0.5
    measurement(worse, "float32.tflite", "mse")["value"] = 0.041       # +2.5%: within
    result = check_reports(worse, board)
    regressed = {(r.artifact, r.figure) for r in result.regressions}
    assert regressed == {("int8.tflite", "mse"), ("int8.tflite", "digit/accuracy")}
    assert row(result, "mse", artifact="float32.tflite", target="rpi4").verdict == "within"
