"""edgeprune check: the regression gate, its JUnit and Markdown outputs, the CLI, and the
artifact breakdowns it names growth from. Reports are built here, following
edgeprune/report/schema.py, with latency samples drawn from a seeded lognormal."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.check import check_reports, load_reports_file, mann_whitney_u, write_baseline
from edgeprune.check_cli import check
from edgeprune.errors import ConfigError, InputError
from edgeprune.report.junit import junit_xml, write_junit
from edgeprune.report.markdown import render_markdown
from edgeprune.report.schema import SCHEMA_VERSION, figure

REPO = Path(__file__).resolve().parents[2]

# What a target profile would carry into the report (targets.Tolerances fields). The
# latency tolerance is 5% here so that a planted 10% shift is clearly beyond it: with
# latency_rel = 0.10 a shift of exactly 10% sits on the threshold by definition.
PROFILE_TOLERANCES = {"size_bytes_rel": 0.0, "accuracy_points": 0.5, "f1_points": 0.5,
                      "latency_rel": 0.05, "instructions_rel": 0.01, "arena_bytes_rel": 0.0}

ARTIFACTS = {  # name -> (format, precision, size_bytes, median latency ms, instructions)
    "float32.tflite": ("tflite", "float32", 48_212, 0.41, 1_912_000),
    "int8.tflite": ("tflite", "int8", 14_876, 0.23, 1_204_118),
    "int8.onnx": ("onnx", "int8", 16_410, 0.35, None),
}


def latency_figure(median_ms: float, seed: int, n: int = 200, sigma: float = 0.15) -> dict:
    """Latency like a shared machine gives it: lognormal around the median, and 3% of
    invokes hit by contention (1.5x to 4x slower)."""
    rng = np.random.default_rng(seed)
    samples = median_ms * np.exp(sigma * rng.standard_normal(n))
    hit = rng.random(n) < 0.03
    samples[hit] *= rng.uniform(1.5, 4.0, hit.sum())
    s = np.sort(samples)
    return figure(float(np.median(s)), "ms", "litert 2.3.0 on local x86_64",
                  p90=float(np.percentile(s, 90)), min=float(s[0]), max=float(s[-1]),
                  mean=float(s.mean()), stdev=float(s.std(ddof=1)),
                  iqr=float(np.subtract(*np.percentile(s, [75, 25]))), n=n,
                  samples=samples.round(6).tolist())


def make_report(target: str = "host", *, seed: int = 0, tolerances: dict | None = None,
                latency_scale: float = 1.0) -> dict:
    """A report.json as `edgeprune export` writes it, for one target."""
    by = "litert 2.3.0 on local x86_64"
    artifacts = [{
        "name": "baseline.keras", "file": None, "format": "keras", "precision": "float32",
        "encoding": "dense", "sha256": None, "parent": None, "settings": {},
        "measurements": {"accuracy": figure(0.9750, "fraction", "tf_keras"),
                         "f1_macro": figure(0.9747, "fraction", "tf_keras")}}]
    for i, (name, (fmt, precision, size, median, insns)) in enumerate(ARTIFACTS.items()):
        m = {
            "accuracy": figure(0.9722, "fraction", by),
            "precision_macro": figure(0.9730, "fraction", by),
            "recall_macro": figure(0.9718, "fraction", by),
            "f1_macro": figure(0.9719, "fraction", by),
            "agreement": figure(0.9944, "fraction", by),
            "size_bytes": figure(size, "bytes", "os.stat"),
            "gzip_bytes": figure(int(size * 0.81), "bytes", "gzip -9"),
            "latency_ms": latency_figure(median * latency_scale, seed * 100 + i),
            "breakdown": {"tensors": {"sequential/conv2d/Conv2D": 72,
                                      "sequential/dense/MatMul": 8192, "arith.constant": 40},
                          "ops": {"CONV_2D": 2, "FULLY_CONNECTED": 2, "RESHAPE": 1}},
        }
        if insns is not None:
            m["instructions_per_invoke"] = figure(insns, "instructions",
                                                  "qemu-aarch64 cortex-a72 plugin")
        artifacts.append({"name": name, "file": f"model_{name.replace('.', '_')}", "format": fmt,
                          "precision": precision, "encoding": "dense", "sha256": "ab" * 32,
                          "parent": "compressed.keras", "settings": {}, "measurements": m})
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "edgeprune", "version": "0.1.0"},
        "target": {"name": target, "engine": "litert", "threads": 1, "delegate": "xnnpack",
                   "device": "local x86_64", "profile_sha256": "cd" * 32,
                   "tolerances": dict(PROFILE_TOLERANCES if tolerances is None else tolerances)},
        "model": {"source": "models/digits", "sha256": "ef" * 32, "input_shape": [8, 8, 1],
                  "num_classes": 10, "parameters": 12_345},
        "data": {"source": "models/digits", "test_samples": 360, "sha256": "01" * 32},
        "seed": 0,
        "recipe": {"quantize": ["float32", "int8"], "formats": ["tflite", "onnx"]},
        "compression": {"sparsity": {"conv2d/kernel": 0.75}, "history": {}, "notes": []},
        "artifacts": artifacts,
        "deploy": "int8.tflite",
        "budgets": [{"name": "max_size_bytes", "figure": "size_bytes", "artifact": "int8.tflite",
                     "limit": 2_000_000, "value": 14_876, "verdict": "pass", "note": ""},
                    {"name": "max_latency_ms", "figure": "latency_ms", "artifact": "int8.tflite",
                     "limit": 15.0, "value": 0.23, "verdict": "pass", "note": ""}],
        "advice": [],
        "verdict": "pass",
    }


def measurement(report: dict, artifact: str, name: str) -> dict:
    for art in report["artifacts"]:
        if art["name"] == artifact:
            return art["measurements"][name]
    raise KeyError(artifact)


def row(result, figure_name: str, artifact: str = "int8.tflite", target: str = "host"):
    found = [r for r in result.rows
             if (r.target, r.artifact, r.figure) == (target, artifact, figure_name)]
    assert len(found) == 1, f"{target}/{artifact}/{figure_name}: {found}"
    return found[0]


@pytest.fixture
def base() -> dict:
    return make_report()


# ------------------------------------------------------------------ verdicts


def test_check_reports_passes_when_reports_identical(base):
    result = check_reports(copy.deepcopy(base), base)
    assert result.passed and result.verdict == "pass"
    assert not result.regressions and not result.improvements
    assert {r.verdict for r in result.rows} == {"unchanged"}
    # keras: accuracy, f1; tflite: + size, gzip, instructions, latency; onnx: no instructions
    assert len(result.rows) == 2 + 6 + 6 + 5


@pytest.mark.parametrize("seed", range(1, 11))
def test_check_reports_passes_when_rerun_is_noise_only(base, seed):
    rerun = make_report(seed=seed)
    result = check_reports(rerun, base)
    assert result.passed, [(r.artifact, r.figure, r.detail) for r in result.regressions]
    assert all(row(result, "latency_ms", a).verdict in ("within", "unchanged") for a in ARTIFACTS)


def test_check_reports_catches_latency_regression_when_median_shifted_10_percent(base):
    result = check_reports(make_report(seed=7, latency_scale=1.10), base)
    assert not result.passed
    for art in ARTIFACTS:
        r = row(result, "latency_ms", art)
        assert r.verdict == "regressed", r.detail
        assert "Mann-Whitney" in r.detail and 0.05 < r.delta_rel < 0.16
    assert "Mann-Whitney U" in result.latency_method


def test_check_reports_catches_latency_regression_when_default_tolerance_and_20_percent(base):
    defaults = {}  # a profile that leaves every tolerance at its default (latency_rel 0.10)
    result = check_reports(make_report(seed=3, latency_scale=1.20, tolerances=defaults),
                           make_report(tolerances=defaults))
    assert row(result, "latency_ms").verdict == "regressed"
    assert row(result, "latency_ms").tolerance == "latency_rel=0.1 (default)"


def test_check_reports_passes_when_latency_shift_significant_but_within_tolerance(base):
    # 3% slower with 200 samples a side: the U test sees it, the 5% ratio rule forgives it
    result = check_reports(make_report(seed=5, latency_scale=1.03), base)
    r = row(result, "latency_ms")
    assert r.verdict == "within" and result.passed, r.detail


def test_check_reports_passes_when_median_moved_but_distributions_overlap(base):
    # few, widely spread samples: medians 23% apart, but the U test cannot tell them apart
    rerun = copy.deepcopy(base)
    measurement(base, "int8.tflite", "latency_ms")["samples"] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    measurement(rerun, "int8.tflite", "latency_ms")["samples"] = [1, 2, 3, 4, 6.5, 7, 8, 9, 10, 11]
    r = row(check_reports(rerun, base), "latency_ms")
    assert r.delta_rel == pytest.approx(6.75 / 5.5 - 1)
    assert r.verdict == "within", r.detail


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_u_matches_scipy_when_samples_have_ties(seed):
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(seed)
    x = np.round(rng.lognormal(0.05 * seed, 0.3, 40 + 50 * seed), 1)   # rounding makes ties
    y = np.round(rng.lognormal(0.0, 0.3, 30 + 70 * seed), 1)
    got = mann_whitney_u(x, y)
    for p, alternative in zip(got, ("greater", "less")):
        want = mannwhitneyu(x, y, alternative=alternative, method="asymptotic").pvalue
        assert p == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_mann_whitney_u_gives_no_evidence_when_all_samples_equal():
    assert mann_whitney_u([2.0] * 10, [2.0] * 12) == (1.0, 1.0)


def test_check_reports_passes_when_latency_has_a_few_huge_outliers(base):
    rerun = copy.deepcopy(base)
    samples = measurement(rerun, "int8.tflite", "latency_ms")["samples"]
    samples[:10] = [s * 50 for s in samples[:10]]   # 5% of invokes hit by a neighbour's job
    result = check_reports(rerun, base)
    assert row(result, "latency_ms").verdict == "within" and result.passed


def test_check_reports_compares_medians_only_when_samples_absent(base):
    rerun = make_report(seed=2, latency_scale=1.2)
    for rep in (rerun, base):
        del measurement(rep, "int8.tflite", "latency_ms")["samples"]
    r = row(check_reports(rerun, base), "latency_ms")
    assert r.verdict == "regressed" and "median ratio" in r.detail and "only" in r.detail


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
def test_check_reports_judges_instruction_growth_against_relative_tolerance(base, growth, verdict):
    rerun = copy.deepcopy(base)
    fig = measurement(rerun, "int8.tflite", "instructions_per_invoke")
    fig["value"] = round(fig["value"] * (1 + growth))
    assert row(check_reports(rerun, base), "instructions_per_invoke").verdict == verdict


def test_check_reports_reports_improvements_when_figures_got_better(base):
    rerun = make_report(seed=4, latency_scale=0.75)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] -= 1000
    measurement(rerun, "int8.tflite", "accuracy")["value"] += 0.01
    measurement(rerun, "int8.tflite", "instructions_per_invoke")["value"] -= 100_000
    result = check_reports(rerun, base)
    assert result.passed
    improved = {(r.artifact, r.figure) for r in result.improvements}
    assert {("int8.tflite", f) for f in ("size_bytes", "accuracy", "instructions_per_invoke",
                                         "latency_ms")} <= improved


# ------------------------------------------------------------------ tolerances


def test_check_reports_uses_profile_tolerances_when_report_carries_them():
    loose = {**PROFILE_TOLERANCES, "size_bytes_rel": 0.01}
    base, rerun = make_report(tolerances=loose), make_report(tolerances=loose)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 100   # +0.67%
    r = row(check_reports(rerun, base), "size_bytes")
    assert r.verdict == "within" and r.tolerance == "size_bytes_rel=0.01 (profile)"


def test_check_reports_applies_overrides_when_given(base):
    rerun = make_report(seed=6, latency_scale=1.10)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    assert not check_reports(rerun, base).passed
    result = check_reports(rerun, base, overrides={"size_bytes_rel": 0.001, "latency_rel": 0.3})
    assert result.passed
    assert row(result, "latency_ms").tolerance == "latency_rel=0.3 (override)"
    assert result.tolerances["host"]["latency_rel"] == 0.3


def test_check_reports_raises_config_error_when_override_unknown(base):
    with pytest.raises(ConfigError, match="latency_pct"):
        check_reports(base, base, overrides={"latency_pct": 0.1})


def test_check_reports_raises_config_error_when_profile_tolerance_invalid(base):
    bad = make_report(tolerances={"latency_rel": -1})
    with pytest.raises(ConfigError) as err:
        check_reports(bad, base, report_source="dist/host/report.json")
    assert "dist/host/report.json: target.tolerances" in str(err.value)
    assert "latency_rel" in str(err.value)


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
    with pytest.raises(InputError, match="artifact 'int8.tflite', size_bytes.value"):
        check_reports(rerun, base)


def test_check_reports_raises_input_error_when_not_a_report(base):
    with pytest.raises(InputError, match="not a report"):
        check_reports({"host": {"artifacts": []}}, base)


def test_check_reports_fails_when_baseline_figure_missing_from_report(base):
    rerun = copy.deepcopy(base)
    del rerun["artifacts"][2]["measurements"]["instructions_per_invoke"]
    result = check_reports(rerun, base)
    r = row(result, "instructions_per_invoke")
    assert r.verdict == "missing" and r.failed and not result.passed


def test_check_reports_fails_when_figure_measured_differently(base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "instructions_per_invoke")["method"] = "estimated"
    r = row(check_reports(rerun, base), "instructions_per_invoke")
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
    rerun["budgets"][1].update(value=None, verdict="not_measured")
    result = check_reports(rerun, base)
    assert not result.regressions and not result.passed
    assert [b["name"] for _, b in result.failed_budgets] == ["max_latency_ms"]


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


def test_check_reports_raises_input_error_when_bundle_key_mismatches_target(base):
    with pytest.raises(InputError, match=r"baseline\['rpi4'\]"):
        check_reports(base, {"rpi4": base})


def test_check_reports_raises_input_error_when_bundle_repeats_a_target(base):
    with pytest.raises(InputError, match="appears twice"):
        check_reports([base, copy.deepcopy(base)], base)


def test_write_baseline_merges_targets_when_file_holds_another(tmp_path, base):
    path = tmp_path / "baselines" / "all.json"
    assert write_baseline(base, path) == ["host"]
    assert load_reports_file(path)["target"]["name"] == "host"       # one target: a plain report
    assert write_baseline(make_report("rpi4"), path) == ["host", "rpi4"]
    bundle = load_reports_file(path)
    assert sorted(bundle) == ["host", "rpi4"]
    newer = make_report("host", seed=9)
    write_baseline(newer, path)
    assert load_reports_file(path)["host"] == newer
    assert [p.name for p in path.parent.iterdir()] == ["all.json"]     # no temp file left


def test_write_baseline_thins_latency_samples_when_there_are_many(tmp_path):
    many = make_report()
    for i, art in enumerate(many["artifacts"][1:]):
        median = ARTIFACTS[art["name"]][3]
        art["measurements"]["latency_ms"] = latency_figure(median, seed=50 + i, n=20_000)
    path = tmp_path / "host.json"
    write_baseline(many, path, max_latency_samples=500)
    kept = measurement(load_reports_file(path), "int8.tflite", "latency_ms")
    full = measurement(many, "int8.tflite", "latency_ms")
    assert len(kept["samples"]) == 500 and kept["samples_thinned_from"] == 20_000
    assert np.median(kept["samples"]) == pytest.approx(np.median(full["samples"]), rel=2e-3)
    assert len(full["samples"]) == 20_000                # the caller's report is untouched
    baseline = load_reports_file(path)
    assert check_reports(make_report(seed=8), baseline).passed
    slower = check_reports(make_report(seed=8, latency_scale=1.10), baseline)
    assert {r.artifact for r in slower.regressions} == set(ARTIFACTS)


def test_write_baseline_replaces_file_when_schema_version_is_old(tmp_path, base):
    path = tmp_path / "host.json"
    path.write_text(json.dumps({**base, "schema_version": 0}))
    write_baseline(base, path)
    assert load_reports_file(path) == base


# ------------------------------------------------------------------ growth


def test_check_reports_names_tensor_and_op_that_grew(base):
    rerun = copy.deepcopy(base)
    m = measurement(rerun, "int8.tflite", "size_bytes")
    m["value"] += 4096
    bd = rerun["artifacts"][2]["measurements"]["breakdown"]
    bd["tensors"]["sequential/dense/MatMul"] += 4096
    bd["tensors"]["sequential/dense_1/MatMul"] = 512
    bd["ops"]["FULLY_CONNECTED"] += 1
    result = check_reports(rerun, base)
    growth = result.growth_for("host", "int8.tflite")
    assert growth.tensors[0] == ("sequential/dense/MatMul", 8192, 12288)
    assert growth.tensors[1] == ("sequential/dense_1/MatMul", 0, 512)
    assert growth.ops == [("FULLY_CONNECTED", 2, 3)]
    assert result.growth_for("host", "int8.onnx") is None


def test_check_reports_raises_input_error_when_breakdown_malformed(base):
    rerun = copy.deepcopy(base)
    rerun["artifacts"][2]["measurements"]["breakdown"] = {"tensors": {"w": "8 KB"}, "ops": {}}
    with pytest.raises(InputError, match="breakdown.tensors"):
        check_reports(rerun, base)


# ------------------------------------------------------------------ JUnit and Markdown


def regressed_pair() -> tuple[dict, dict]:
    base = [make_report("host"), make_report("rpi4")]
    rerun = [make_report("host", seed=1), make_report("rpi4", seed=1, latency_scale=1.25)]
    measurement(rerun[0], "int8.tflite", "size_bytes")["value"] += 1
    rerun[0]["artifacts"][2]["measurements"]["breakdown"]["tensors"]["arith.constant"] += 1
    rerun[1]["budgets"][0].update(value=3_000_000, verdict="fail")
    return rerun, base


def test_junit_xml_has_one_suite_per_target_and_failures_where_regressed():
    result = check_reports(*regressed_pair())
    root = ET.fromstring(ET.tostring(junit_xml(result).getroot()))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["host", "rpi4"]
    host_fail = [c for c in suites["host"].iter("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in host_fail] == \
        [("host.int8_tflite", "size_bytes [int8.tflite]")]
    message = host_fail[0].find("failure").get("message")
    assert "+1 bytes" in message and "size_bytes_rel=0 (profile)" in message
    assert "arith.constant" in host_fail[0].find("failure").text
    rpi_fail = {c.get("name") for c in suites["rpi4"].iter("testcase")
                if c.find("failure") is not None}
    assert rpi_fail == {f"latency_ms [{a}]" for a in ARTIFACTS} | {"max_size_bytes [int8.tflite]"}
    assert int(root.get("failures")) == 1 + 3 + 1     # size; 3 latency rows; one budget
    host_rows = [r for r in result.rows if r.target == "host"]
    assert int(suites["host"].get("tests")) == 2 + len(host_rows)


def test_write_junit_writes_parseable_file(tmp_path):
    result = check_reports(*regressed_pair())
    write_junit(result, tmp_path / "out" / "check.xml")
    root = ET.parse(tmp_path / "out" / "check.xml").getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) > 0


def test_render_markdown_has_verdict_delta_rows_and_latency_method():
    result = check_reports(*regressed_pair())
    text = render_markdown(result)
    assert text.startswith("## edgeprune check: ❌ FAIL")
    assert "| int8.tflite | size_bytes | 14,876 bytes | 14,877 bytes | +1 bytes (+0.01%) |" in text
    assert "❌ regressed" in text and "Mann-Whitney U" in text
    assert "| max_size_bytes | int8.tflite | 3000000 | 2000000 | ❌ fail |" in text
    assert "tensor arith.constant: 40 -> 41 B (+1)" in text
    assert text.count("<details>") == 2


def test_render_markdown_says_pass_when_nothing_regressed(base):
    text = render_markdown(check_reports(make_report(seed=1), base))
    assert text.startswith("## edgeprune check: ✅ PASS")
    assert "Every figure is within its tolerance" in text


# ------------------------------------------------------------------ CLI


@pytest.fixture
def files(tmp_path, base):
    def write(name: str, data) -> str:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path)
    return write


def test_check_cli_exits_0_when_nothing_regressed(files, base, tmp_path):
    junit, md = tmp_path / "j.xml", tmp_path / "s.md"
    out = CliRunner().invoke(check, [files("r.json", make_report(seed=3)), "--baseline",
                                     files("b.json", base), "--junit", str(junit),
                                     "--markdown", str(md)])
    assert out.exit_code == 0, out.output
    assert "PASS: 0 regression(s)" in out.output and "Mann-Whitney U" in out.output
    assert "int8.tflite" in out.output and "latency_ms" in out.output
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert md.read_text().startswith("## edgeprune check: ✅ PASS")


def test_check_cli_exits_3_when_size_regressed(files, base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    out = CliRunner().invoke(check, [files("r.json", rerun), "--baseline", files("b.json", base)])
    assert out.exit_code == 3, out.output
    line = next(l for l in out.output.splitlines() if "int8.tflite" in l and "size_bytes" in l)
    assert "REGRESSED" in line and "+1 bytes" in line
    assert "FAIL: 1 regression(s)" in out.output


def test_check_cli_exits_0_when_override_allows_growth(files, base):
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    out = CliRunner().invoke(check, [files("r.json", rerun), "--baseline", files("b.json", base),
                                     "--size-rel", "0.001"])
    assert out.exit_code == 0, out.output


def test_check_cli_exits_2_with_error_when_baseline_missing(files, base, tmp_path):
    out = CliRunner().invoke(check, [files("r.json", base), "--baseline",
                                     str(tmp_path / "nope.json")])
    assert out.exit_code == 2
    assert out.output.startswith("error: ") and "nope.json" in out.output
    assert "--update-baseline" in out.output and "Traceback" not in out.output


def test_check_cli_exits_2_when_report_is_not_json(tmp_path, files, base):
    bad = tmp_path / "r.json"
    bad.write_text("{not json")
    out = CliRunner().invoke(check, [str(bad), "--baseline", files("b.json", base)])
    assert out.exit_code == 2 and "not valid JSON" in out.output


def test_check_cli_exits_2_when_schema_version_differs(files, base):
    old = {**base, "schema_version": SCHEMA_VERSION + 1}
    out = CliRunner().invoke(check, [files("r.json", base), "--baseline", files("b.json", old)])
    assert out.exit_code == 2 and "upgrade edgeprune" in out.output


def test_check_cli_updates_baseline_and_exits_0_when_asked(files, tmp_path):
    rerun = make_report(seed=1, latency_scale=2.0)
    baseline = tmp_path / "baselines" / "host.json"
    report = files("r.json", rerun)
    out = CliRunner().invoke(check, [report, "--baseline", str(baseline), "--update-baseline"])
    assert out.exit_code == 0 and "targets: host" in out.output
    assert json.loads(baseline.read_text()) == rerun
    again = CliRunner().invoke(check, [report, "--baseline", str(baseline)])
    assert again.exit_code == 0, again.output


def test_check_cli_prints_json_when_asked(files, base):
    out = CliRunner().invoke(check, [files("r.json", base), "--baseline", files("b.json", base),
                                     "--json"])
    data = json.loads(out.output)
    assert out.exit_code == 0 and data["verdict"] == "pass"
    assert data["counts"] == {"regressions": 0, "improvements": 0, "failed_budgets": 0}


def test_check_cli_runs_without_importing_tensorflow_or_scipy_stats(files, base):
    code = ("import sys; from click.testing import CliRunner; "
            "from edgeprune.check_cli import check; "
            f"r = CliRunner().invoke(check, [{files('r.json', base)!r}, '--baseline', "
            f"{files('b.json', base)!r}, '--junit', '/dev/null']); "
            "assert r.exit_code == 0, r.output; "
            "heavy = ('tensorflow', 'tf_keras', 'keras'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in heavy]; "
            "assert not bad, bad; "
            "assert 'scipy.stats' not in sys.modules, 'scipy.stats takes seconds to import'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------ breakdowns of real files


def tiny_tflite(path: Path, units: int) -> Path:
    """A one-layer FULLY_CONNECTED .tflite (3 -> units), written with the LiteRT schema."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(shape, buffer, name):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = list(shape), s.TensorType.FLOAT32, buffer, name.encode()
        return t

    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    buffers = [s.BufferT() for _ in range(5)]
    buffers[2].data = list(np.ones((units, 3), np.float32).tobytes())
    buffers[3].data = list(np.zeros(units, np.float32).tobytes())
    graph = s.SubGraphT()
    graph.tensors = [tensor((1, 3), 1, "input"), tensor((units, 3), 2, "dense/MatMul"),
                     tensor((units,), 3, "dense/bias"), tensor((1, units), 4, "output")]
    graph.inputs, graph.outputs = [0], [3]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = s.FullyConnectedOptionsT()
    graph.operators = [op]
    model = s.ModelT()
    model.version, model.operatorCodes, model.buffers, model.subgraphs = 3, [code], buffers, [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def tiny_onnx(path: Path, units: int, relus: int = 1) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, units), np.float32), "dense/kernel")
    bias = numpy_helper.from_array(np.zeros(units, np.float32), "dense/bias")
    nodes = [helper.make_node("MatMul", ["x", "dense/kernel"], ["mm"]),
             helper.make_node("Add", ["mm", "dense/bias"], ["y0"])]
    nodes += [helper.make_node("Relu", [f"y{i}"], [f"y{i + 1}"]) for i in range(relus)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info(f"y{relus}", TensorProto.FLOAT, [1, units])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_breakdown_tflite_counts_constant_bytes_and_ops(tmp_path):
    from edgeprune.measure.breakdown import breakdown_tflite

    got = breakdown_tflite(tiny_tflite(tmp_path / "m.tflite", units=4))
    assert got == {"tensors": {"dense/MatMul": 4 * 3 * 4, "dense/bias": 4 * 4},
                   "ops": {"FULLY_CONNECTED": 1}}


def test_breakdown_tflite_raises_input_error_when_file_not_tflite(tmp_path):
    from edgeprune.measure.breakdown import breakdown_tflite

    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(InputError, match="m.tflite"):
        breakdown_tflite(bad)


def test_breakdown_onnx_counts_initializer_bytes_and_ops(tmp_path):
    from edgeprune.measure.breakdown import breakdown_onnx

    got = breakdown_onnx(tiny_onnx(tmp_path / "m.onnx", units=4, relus=2))
    assert got == {"tensors": {"dense/bias": 16, "dense/kernel": 48},
                   "ops": {"Add": 1, "MatMul": 1, "Relu": 2}}


def test_check_reports_names_grown_layer_when_breakdowns_come_from_real_files(tmp_path, base):
    from edgeprune.measure.breakdown import breakdown_onnx, breakdown_tflite

    small_t, big_t = (tiny_tflite(tmp_path / f"{u}.tflite", u) for u in (4, 6))
    small_o, big_o = (tiny_onnx(tmp_path / f"{r}.onnx", u, r) for u, r in ((4, 1), (4, 2)))
    rerun = copy.deepcopy(base)
    for report, tfl, onx in ((base, small_t, small_o), (rerun, big_t, big_o)):
        for art, path, fn in (("int8.tflite", tfl, breakdown_tflite),
                              ("int8.onnx", onx, breakdown_onnx)):
            m = next(a for a in report["artifacts"] if a["name"] == art)["measurements"]
            m["breakdown"] = fn(path)
            m["size_bytes"]["value"] = path.stat().st_size
    result = check_reports(rerun, base)
    assert row(result, "size_bytes").verdict == "regressed"
    tfl_growth = result.growth_for("host", "int8.tflite")
    assert tfl_growth.tensors[0] == ("dense/MatMul", 48, 72) and not tfl_growth.ops
    assert result.growth_for("host", "int8.onnx").ops == [("Relu", 1, 2)]
