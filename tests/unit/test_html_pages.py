"""The HTML pages built from small reports: escaping, labels of host time and estimates,
the comparison of several targets."""

from check_reports import make_report

from edgeprune.report.html import render_comparison, render_report
from edgeprune.report.schema import figure


def test_render_report_escapes_names_from_the_user():
    report = make_report()
    report["model"]["source"] = "<script>alert(1)</script>"
    report["compression"]["sparsity"] = {'conv"><img src=x onerror=alert(1)>': 0.5}
    page = render_report(report)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x" in page


def test_render_report_labels_host_time_and_estimates_when_target_is_not_this_machine():
    report = make_report()
    for art in report["artifacts"]:
        m = art["measurements"]
        if "latency_ms" in m:
            m["host_latency_ms"] = m.pop("latency_ms")
            m["latency_estimate_ms"] = figure(1.5, "ms", "cycles model", "estimated", threads=4,
                                              calibration="c", error_band={"rel": 0.2, "rows": 6, "how": "h"})
    page = render_report(report)
    assert 'id="chart-host-latency"' in page and "Latency on this machine, not the target" in page
    assert 'id="chart-latency-estimate"' in page and "1.5 ms \u00b120%" in page
    assert 'id="chart-latency"' not in page
    assert "Latency distribution on this machine, not the target" in page


def test_render_comparison_puts_each_target_side_by_side():
    a, b = make_report(), make_report()
    b["target"]["name"] = "rpi4"
    b["budgets"][0]["verdict"] = b["verdict"] = "fail"
    page = render_comparison({"host": a, "rpi4": b})
    assert '<section id="verdict" class="verdict fail">' in page
    assert 'id="chart-targets-size"' in page and 'id="chart-targets-latency"' in page
    assert page.count("<tr><td>host</td>") == 1 and page.count("<tr><td>rpi4</td>") == 1
