"""The combined page of a run for several targets: one column per target, side by side."""

from __future__ import annotations

from html import escape

from .page import cell, document, fmt_bytes, fmt_ms, fmt_number, table, verdict_cell
from .report import primary_metric
from .svg import Bar, bars

_LATENCY = (("latency_ms", "on the target"), ("latency_estimate_ms", "estimate"),
            ("host_latency_ms", "this machine, not the target"))


def render_comparison(reports: dict[str, dict]) -> str:
    """The page for ``{target name: report.json dict}``: the verdicts, then the deployed
    artifact's size, metric and latency per target, each labelled by how it was obtained."""
    names = list(reports)
    deploys = {t: _deploy(r) for t, r in reports.items()}
    rows = []
    size, metric_bars, latency = [], [], []
    for t in names:
        rep, dep = reports[t], deploys[t]
        m = dep.get("measurements", {}) if dep else {}
        metric = primary_metric(rep)
        lat_name, lat_kind = next(((n, k) for n, k in _LATENCY if isinstance(m.get(n), dict)), (None, ""))
        lat = m.get(lat_name, {}) if lat_name else {}
        mfig = m.get(metric, {}) if metric else {}
        failing = [b.get("name") for b in rep.get("budgets", []) if b.get("verdict") != "pass"]
        rows.append([cell(t), verdict_cell(str(rep.get("verdict"))), cell(rep.get("deploy")),
                     cell(fmt_bytes(m.get("size_bytes", {}).get("value"))),
                     cell(f"{metric} {fmt_number(mfig.get('value'), mfig.get('unit', ''))}" if mfig else "-"),
                     cell(f"{fmt_ms(lat.get('value'))} ({lat_kind})" if lat else "-"),
                     cell(", ".join(map(str, failing)) or "-")])
        if isinstance(m.get("size_bytes", {}).get("value"), (int, float)):
            size.append(Bar(f"{t}: {rep.get('deploy')}", m["size_bytes"]["value"], fmt_bytes(m["size_bytes"]["value"])))
        if isinstance(mfig.get("value"), (int, float)):
            metric_bars.append(Bar(f"{t}: {metric}", mfig["value"],
                                   fmt_number(mfig["value"], mfig.get("unit", ""))))
        if isinstance(lat.get("value"), (int, float)):
            series = {"latency_ms": "a", "latency_estimate_ms": "est"}.get(lat_name, "host")
            latency.append(Bar(f"{t} ({lat_kind})", lat["value"], fmt_ms(lat["value"]), series))
    verdict = "pass" if all(r.get("verdict") == "pass" for r in reports.values()) else "fail"
    per_target = ", ".join(f"{t}: {reports[t].get('verdict')}" for t in names)
    body = [f"<h1>edgeprune: {len(names)} target(s) side by side</h1>",
            f'<section id="verdict" class="verdict {verdict}"><div class="big">{verdict.upper()}</div>'
            f"<div>{escape(per_target)}</div></section>",
            table(["target", "verdict", "deploy", "size", "metric", "latency", "budgets not met"], rows,
                  numeric=(3, 4, 5), table_id="targets")]
    if size:
        body.append("<h3>Deployed file size</h3>" + bars("chart-targets-size", "Deployed file size per target",
                                                          size, fmt_bytes))
    if metric_bars:
        body.append("<h3>Task metric</h3>" + bars("chart-targets-metric", "Deployed artifact's task metric per target",
                                                   metric_bars, lambda v: f"{v:.3g}"))
    if latency:
        body.append("<h3>Latency</h3>" + bars(
            "chart-targets-latency", "Deployed artifact's latency per target (measured on the target, "
            "an estimate, or this machine's time, as labelled)", latency, fmt_ms,
            legend={"a": "on the target", "est": "estimate", "host": "this machine"}))
    return document(f"edgeprune: {', '.join(names)}", "".join(body))


def _deploy(report: dict) -> dict | None:
    return next((a for a in report.get("artifacts", []) if a.get("name") == report.get("deploy")), None)
