"""What `edgeprune check` prints and writes: the terminal table (changed rows by default,
``--all`` for every row), JUnit XML, the Markdown summary, JSON, and exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from check_reports import ARTIFACTS, make_report, measurement
from click.testing import CliRunner

from edgeprune.check import check_reports, render_text
from edgeprune.check_cli import check
from edgeprune.report.junit import junit_xml, write_junit
from edgeprune.report.markdown import render_markdown
from edgeprune.report.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]


def regressed_pair() -> tuple[list, list]:
    """host: one byte larger; rpi4: 2% more instructions everywhere and a failed budget,
    and its host time 25% slower (shown, never gated)."""
    base = [make_report("host"), make_report("rpi4")]
    rerun = [make_report("host", seed=1), make_report("rpi4", seed=1, latency_scale=1.25)]
    measurement(rerun[0], "int8.tflite", "size_bytes")["value"] += 1
    measurement(rerun[0], "int8.tflite", "breakdown")["tensors"]["arith.constant"] += 1
    for art in ("float32.tflite", "int8.tflite"):
        fig = measurement(rerun[1], art, "instructions_per_invoke")
        fig["value"] = round(fig["value"] * 1.02)
    rerun[1]["budgets"][0].update(value=3_000_000, verdict="fail")
    return rerun, base


def test_render_text_prints_only_notable_rows_by_default():
    result = check_reports(*regressed_pair())
    text = render_text(result)
    table = text.split("\n\n")[0].splitlines()
    assert len(table) == 2 + 3                       # header, rule, three regressed rows
    assert all("REGRESSED" in line for line in table[2:])
    assert "host_latency_ms" not in text and "within" not in table[0]
    assert "shown for information only (never gated); --all lists every row" in text
    assert "host/int8.tflite grew: tensor arith.constant: 40 -> 41 B (+1)" in text
    assert "rpi4: budget max_size_bytes [int8.tflite] fail" in text
    assert text.splitlines()[-1].startswith("FAIL: 3 regression(s), 1 failed budget(s)")


def test_render_text_prints_every_row_with_all():
    result = check_reports(*regressed_pair())
    text = render_text(result, show_all=True)
    assert len(text.split("\n\n")[0].splitlines()) == 2 + len(result.rows)
    line = next(l for l in text.splitlines() if "int8.tflite" in l and "host_latency_ms" in l)
    assert line.split()[-3:] == ["not", "gated", "shown"] and "% median" in line


def test_render_text_says_so_when_nothing_changed():
    base = make_report()
    text = render_text(check_reports(copy.deepcopy(base), base))
    assert text.startswith("No figure changed beyond its tolerance.")


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
    assert rpi_fail == {"instructions_per_invoke [float32.tflite]",
                        "instructions_per_invoke [int8.tflite]", "max_size_bytes [int8.tflite]"}
    assert int(root.get("failures")) == 1 + 3
    names = {c.get("name") for c in root.iter("testcase")}
    assert not any("host_latency_ms" in n for n in names)      # never gated: not a test


def test_junit_xml_skips_latency_that_could_not_be_compared():
    base = make_report()
    del measurement(base, "int8.tflite", "latency_ms")["control"]
    root = junit_xml(check_reports(make_report(seed=1), base)).getroot()
    skipped = [c for c in root.iter("testcase") if c.find("skipped") is not None]
    assert [c.get("name") for c in skipped] == ["latency_ms [int8.tflite]"]
    assert root.get("skipped") == "1" and root.get("failures") == "0"


def test_write_junit_writes_parseable_file(tmp_path):
    write_junit(check_reports(*regressed_pair()), tmp_path / "out" / "check.xml")
    root = ET.parse(tmp_path / "out" / "check.xml").getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) > 0


def test_render_markdown_has_verdict_delta_rows_and_latency_method():
    text = render_markdown(check_reports(*regressed_pair()))
    assert text.startswith("## edgeprune check: ❌ FAIL")
    assert "| int8.tflite | size_bytes | 14,876 bytes | 14,877 bytes | +1 bytes (+0.01%) |" in text
    assert "❌ regressed" in text and "A/B in this run" in text
    assert "| max_size_bytes | int8.tflite | 3000000 | 2000000 | ❌ fail |" in text
    assert "tensor arith.constant: 40 -> 41 B (+1)" in text
    assert "ℹ️ shown, not gated" in text and text.count("<details>") == 2


def test_render_markdown_says_pass_when_nothing_regressed():
    text = render_markdown(check_reports(make_report(seed=1), make_report()))
    assert text.startswith("## edgeprune check: ✅ PASS")
    assert "Every figure is within its tolerance" in text


# ------------------------------------------------------------------ CLI


@pytest.fixture
def files(tmp_path):
    def write(name: str, data) -> str:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path)
    return write


def test_check_cli_exits_0_when_nothing_regressed(files, tmp_path):
    junit, md = tmp_path / "j.xml", tmp_path / "s.md"
    out = CliRunner().invoke(check, [files("r.json", make_report(seed=3)), "--baseline",
                                     files("b.json", make_report()), "--junit", str(junit),
                                     "--markdown", str(md), "--all"])
    assert out.exit_code == 0, out.output
    assert "PASS: 0 regression(s)" in out.output and "A/B in this run" in out.output
    assert "int8.tflite" in out.output and "latency_ms" in out.output
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert md.read_text().startswith("## edgeprune check: ✅ PASS")


def test_check_cli_exits_3_when_size_regressed(files):
    base = make_report()
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    out = CliRunner().invoke(check, [files("r.json", rerun), "--baseline", files("b.json", base)])
    assert out.exit_code == 3, out.output
    line = next(l for l in out.output.splitlines() if "int8.tflite" in l and "size_bytes" in l)
    assert "REGRESSED" in line and "+1 bytes" in line
    assert "FAIL: 1 regression(s)" in out.output


def test_check_cli_exits_0_when_override_allows_growth(files):
    base = make_report()
    rerun = copy.deepcopy(base)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    out = CliRunner().invoke(check, [files("r.json", rerun), "--baseline", files("b.json", base),
                                     "--size-rel", "0.001"])
    assert out.exit_code == 0, out.output


def test_check_cli_exits_2_with_error_when_baseline_missing(files, tmp_path):
    out = CliRunner().invoke(check, [files("r.json", make_report()), "--baseline",
                                     str(tmp_path / "nope.json")])
    assert out.exit_code == 2
    assert out.output.startswith("error: ") and "nope.json" in out.output
    assert "--update-baseline" in out.output and "Traceback" not in out.output


def test_check_cli_exits_2_when_report_is_not_json(tmp_path, files):
    bad = tmp_path / "r.json"
    bad.write_text("{not json")
    out = CliRunner().invoke(check, [str(bad), "--baseline", files("b.json", make_report())])
    assert out.exit_code == 2 and "not valid JSON" in out.output


def test_check_cli_exits_2_when_schema_version_differs(files):
    old = {**make_report(), "schema_version": SCHEMA_VERSION + 1}
    out = CliRunner().invoke(check, [files("r.json", make_report()), "--baseline",
                                     files("b.json", old)])
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


def test_check_cli_prints_json_when_asked(files):
    base = make_report()
    out = CliRunner().invoke(check, [files("r.json", base), "--baseline", files("b.json", base),
                                     "--json"])
    data = json.loads(out.output)
    assert out.exit_code == 0 and data["verdict"] == "pass"
    assert data["counts"] == {"regressions": 0, "improvements": 0, "not_compared": 0,
                              "failed_budgets": 0}
    assert len(data["rows"]) == sum(1 for _ in data["rows"]) and data["seconds"] >= 0


def test_check_cli_runs_without_importing_tensorflow_or_scipy_stats(files):
    code = ("import sys; from click.testing import CliRunner; "
            "from edgeprune.check_cli import check; "
            f"r = CliRunner().invoke(check, [{files('r.json', make_report())!r}, '--baseline', "
            f"{files('b.json', make_report())!r}, '--junit', '/dev/null']); "
            "assert r.exit_code == 0, r.output; "
            "heavy = ('tensorflow', 'tf_keras', 'keras'); "
            "bad = [m for m in sys.modules if m.split('.')[0] in heavy]; "
            "assert not bad, bad; "
            "assert 'scipy.stats' not in sys.modules, 'scipy.stats takes seconds to import'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_check_cli_shows_each_artifact_in_markdown_details(files, tmp_path):
    md = tmp_path / "s.md"
    CliRunner().invoke(check, [files("r.json", make_report(seed=2)), "--baseline",
                               files("b.json", make_report()), "--markdown", str(md)])
    text = md.read_text()
    assert all(f"| {name} |" in text for name in ARTIFACTS)
