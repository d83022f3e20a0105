"""report.html and check.html rendered in headless Chromium: the charts are there after
layout, the verdict is on top, nothing fails in the console, nothing is fetched."""

import json
import re

import pytest

from chromium import render

pytestmark = pytest.mark.slow

REPORT_CHARTS = ("chart-size", "chart-metric", "chart-latency", "chart-latency-dist", "chart-sparsity",
                 "chart-ops")


@pytest.fixture(scope="module")
def rendered(digits_export, tmp_path_factory):
    folder, _ = digits_export
    return render(folder / "report.html", "report", tmp_path_factory.mktemp("shots"))


def test_report_html_is_written_beside_report_json_and_self_contained(digits_export):
    folder, _ = digits_export
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and not re.search(r'(src|href)=["\']?(https?:)?//', page)
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg ")


def test_report_html_renders_charts_and_verdict_without_console_errors(rendered, digits_export):
    folder, _ = digits_export
    report = json.loads((folder / "report.json").read_text())
    assert rendered.console == [], rendered.console
    dom = rendered.dom
    for chart in REPORT_CHARTS:
        match = re.search(rf'<svg id="{chart}"[^>]*><title>([^<]+)</title>', dom)
        assert match, f"{chart} missing from the rendered page"
    assert re.search(r'<svg id="chart-latency"[^>]*><title>Latency on the target', dom)
    verdict = re.search(r'<section id="verdict" class="verdict (\w+)"><div class="big">(\w+)</div>', dom)
    assert verdict and verdict.groups() == (report["verdict"], report["verdict"].upper())
    budgets = re.search(r'<table id="budgets">.*?</table>', dom, re.S).group(0)
    assert all(b["name"] in budgets for b in report["budgets"])
    deploy_bars = re.search(r'<svg id="chart-size".*?</svg>', dom, re.S).group(0)
    assert deploy_bars.count("<rect") >= 2 * (len(report["artifacts"]) - 2)
    assert rendered.screenshot.stat().st_size > 20_000   # a page, not a blank window


def test_render_console_capture_sees_an_uncaught_error(tmp_path):
    """The console assertion above can fail: a page with a script error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    out = render(page, "console-check", tmp_path, size="400,300")
    assert any("Uncaught ReferenceError" in line for line in out.console), out.stderr[-2000:]


def test_check_html_renders_the_comparison_per_artifact(digits_export, tmp_path):
    """A baseline whose int8 file was 10% bigger and 5 points more accurate: the page says
    size improved, accuracy regressed, and the check failed."""
    from click.testing import CliRunner

    from edgeprune.cli import cli

    folder, _ = digits_export
    base = json.loads((folder / "report.json").read_text())
    int8 = next(a for a in base["artifacts"] if a["name"] == "int8.tflite")["measurements"]
    int8["size_bytes"]["value"] = int(int8["size_bytes"]["value"] * 1.1)
    int8["accuracy"]["value"] = min(int8["accuracy"]["value"] + 0.05, 1.0)
    (tmp_path / "baseline.json").write_text(json.dumps(base))
    page = tmp_path / "check.html"
    result = CliRunner().invoke(cli, ["check", str(folder / "report.json"), "--baseline",
                                      str(tmp_path / "baseline.json"), "--no-remeasure", "--html", str(page)])
    assert result.exit_code == 3, result.output
    out = render(page, "check", tmp_path)
    assert out.console == []
    assert '<section id="verdict" class="verdict fail"><div class="big">FAIL</div>' in out.dom
    section = re.search(r"<h2>host: int8.tflite</h2>(.*?)</table>", out.dom, re.S).group(1)
    assert re.search(r'<svg id="chart-check-\d+"', section)
    rows = dict(re.findall(r"<tr><td>(\w+)</td>.*?<span class=\"v-\w+\">([\w ]+)</span>", section))
    assert rows["size_bytes"] == "improved" and rows["accuracy"] == "regressed", rows
