"""report.html: one export's report.json as a page a person reads (see docs/report-html.md).

First the verdict (the deployed artifact and each budget with its value and limit), then a
chart per question: how big is each file, how good, how fast (on the target; this machine's
time labelled as such; estimates labelled with their method and error band), how the time
is spread, which layers were pruned, which operators cost most; then the recipe in force and
the notes and advice.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .page import bullets, cell, document, fmt_bytes, fmt_ms, fmt_number, pre_json, table, verdict_cell
from .svg import Bar, bars, distribution

# The figures drawn as latency charts: (figure, chart id, title, bar series, tag).
LATENCY_CHARTS = (
    ("latency_ms", "chart-latency", "Latency on the target (median, whisker to p90)", "a", "measured"),
    ("host_latency_ms", "chart-host-latency",
     "Latency on this machine, not the target (median, whisker to p90; shown, never gated)", "host",
     "this machine"),
    ("latency_estimate_ms", "chart-latency-estimate",
     "Latency on the target, estimate (whisker: the estimate's error band)", "est", "estimate"),
)
_METRICS = ("accuracy", "f1_macro", "mae", "mse", "max_abs_error")


def render_report(report: dict) -> str:
    """The whole page for one report.json (as a dict)."""
    report = _legacy_host_latency(report)
    target = report.get("target", {}).get("name", "?")
    body = [f"<h1>edgeprune report: {escape(str(report.get('model', {}).get('source', 'model')))} "
            f"for {escape(str(target))}</h1>",
            f'<p class="sub">{escape(str(report.get("target", {}).get("description", "")))}</p>',
            headline(report), charts(report), _details(report)]
    return document(f"edgeprune {target}: {report.get('verdict', '?')}", "".join(body))


def headline(report: dict) -> str:
    """The verdict box and the budgets table."""
    verdict = str(report.get("verdict", "fail"))
    deploy = str(report.get("deploy", "?"))
    failing = [b for b in report.get("budgets", []) if b.get("verdict") != "pass"]
    summary = (f"{len(report.get('budgets', []))} budget(s), all met" if not failing else
               f"{len(failing)} budget(s) not met: " + ", ".join(str(b.get("name")) for b in failing))
    units = _units(report)
    units.update({b.get("figure"): "ms" for b in report.get("budgets", [])
                  if str(b.get("figure")).endswith("_ms") and b.get("figure") not in units})
    rows = [[escape(str(b.get("name"))), cell(b.get("figure")), cell(b.get("artifact")),
             escape(fmt_number(b.get("value"), units.get(b.get("figure"), ""))),
             escape(fmt_number(b.get("limit"), units.get(b.get("figure"), ""))),
             verdict_cell(str(b.get("verdict"))), f'<span class="note">{cell(b.get("note") or "")}</span>']
            for b in report.get("budgets", [])]
    return (f'<section id="verdict" class="verdict {"pass" if verdict == "pass" else "fail"}">'
            f'<div class="big">{escape(verdict.upper())}</div>'
            f'<div>deploy <b>{escape(deploy)}</b> on <b>{escape(str(report.get("target", {}).get("name")))}'
            f'</b><br>{escape(summary)}</div></section>'
            + table(["budget", "figure", "artifact", "value", "limit", "verdict", "note"], rows,
                    numeric=(3, 4), table_id="budgets"))


def charts(report: dict) -> str:
    arts = [a for a in report.get("artifacts", []) if isinstance(a.get("measurements"), dict)]
    deploy = report.get("deploy")
    out = ["<h2>Artifacts</h2>", _size_chart(arts, deploy), _metric_chart(report, arts, deploy)]
    out += [_latency_chart(arts, deploy, *spec) for spec in LATENCY_CHARTS]
    out.append(_distribution(arts))
    out.append(_sparsity_chart(report, arts, deploy))
    out.append(_ops_chart(arts, deploy))
    return "".join(part for part in out if part)


def _fig(art: dict, name: str) -> dict | None:
    fig = art["measurements"].get(name)
    return fig if isinstance(fig, dict) and isinstance(fig.get("value"), (int, float)) \
        and not isinstance(fig.get("value"), bool) else None


def _series(art: dict, deploy: Any, default: str = "a") -> str:
    return "deploy" if art.get("name") == deploy else default


def _size_chart(arts: list[dict], deploy: Any) -> str:
    rows = []
    for art in arts:
        for name, series in (("size_bytes", "a"), ("gzip_bytes", "b")):
            fig = _fig(art, name)
            if fig:
                rows.append(Bar(f"{art['name']} {'gzip' if series == 'b' else ''}".strip(),
                                fig["value"], fmt_bytes(fig["value"]), series, hint=str(fig.get("by", ""))))
    if not rows:
        return ""
    return ("<h3>Size</h3>" + bars("chart-size", "File size per artifact (bytes, and gzip-compressed)",
                                   rows, fmt_bytes, legend={"a": "file", "b": "gzip"}))


def primary_metric(report: dict) -> str | None:
    """The task's primary metric (``model.task.primary_metric``), else the first known one measured."""
    task = report.get("model", {}).get("task")
    if isinstance(task, dict) and isinstance(task.get("primary_metric"), str):
        return task["primary_metric"]
    names = {n for a in report.get("artifacts", []) for n in a.get("measurements", {})}
    return next((m for m in _METRICS if m in names), None)


def _metric_chart(report: dict, arts: list[dict], deploy: Any) -> str:
    metric = primary_metric(report)
    if metric is None:
        return ""
    rows = []
    for art in arts:
        fig = _fig(art, metric)
        if fig:
            text = fmt_number(fig["value"], fig.get("unit", ""))
            rows.append(Bar(art["name"], fig["value"], text, _series(art, deploy), hint=str(fig.get("by", ""))))
    if not rows:
        return ""
    unit = next((f.get("unit", "") for a in arts if (f := _fig(a, metric))), "")
    return (f"<h3>{escape(metric)}</h3>" + bars("chart-metric", f"{metric} per artifact, on the test split",
                                                  rows, lambda v: fmt_number(v, unit)))


def _latency_chart(arts: list[dict], deploy: Any, name: str, chart_id: str, title: str, series: str,
                   tag: str) -> str:
    rows, how, how_deploy = [], "", ""
    for art in arts:
        fig = _fig(art, name)
        if not fig:
            continue
        value = fig["value"]
        lo = hi = None
        text = fmt_ms(value)
        band = fig.get("error_band") if isinstance(fig.get("error_band"), dict) else None
        if band and isinstance(band.get("rel"), (int, float)):
            lo, hi = value * (1 - band["rel"]), value * (1 + band["rel"])
            text += f" \u00b1{band['rel'] * 100:.0f}%"
            how = (f"method: {fig.get('method')}; error band: {band.get('how', '')}; "
                   f"calibration: {fig.get('calibration', '')}; {fig.get('threads', '?')} thread(s)")
        elif isinstance(fig.get("p90"), (int, float)):
            lo, hi = value, fig["p90"]
            text += f" (p90 {fmt_ms(fig['p90'])})"
            how = f"measured by {fig.get('by', '')}"
        rows.append(Bar(art["name"], value, text, series if series != "a" else _series(art, deploy),
                        lo, hi, str(fig.get("by", ""))))
        if art["name"] == deploy:
            how_deploy = f"{deploy}: {how}"
    if not rows:
        return ""
    cls = "tag est" if tag == "estimate" else "tag"
    return (f'<h3>{escape(title.split(" (")[0])}<span class="{cls}">{escape(tag)}</span></h3>'
            + bars(chart_id, title, rows, fmt_ms) + f'<p class="note">{escape(how_deploy or how)}</p>')


def _distribution(arts: list[dict]) -> str:
    for name, label in (("latency_ms", "on the target"), ("host_latency_ms", "on this machine, not the target")):
        rows = [(a["name"], [float(s) for s in fig["samples"] if isinstance(s, (int, float))])
                for a in arts if (fig := a["measurements"].get(name)) and isinstance(fig, dict)
                and isinstance(fig.get("samples"), list)]
        rows = [r for r in rows if r[1]]
        if rows:
            title = f"Latency distribution {label}: every timed invoke (box: quartiles, line: median)"
            return f"<h3>Latency distribution {escape(label)}</h3>" + distribution(
                "chart-latency-dist", title, rows, fmt_ms)
    return ""


def _sparsity_chart(report: dict, arts: list[dict], deploy: Any) -> str:
    dep = next((a for a in arts if a.get("name") == deploy), None)
    fig = dep["measurements"].get("sparsity") if dep else None
    if isinstance(fig, dict) and isinstance(fig.get("value"), dict):
        layers, source = fig["value"], f"read back from {deploy}"
    else:
        layers, source = report.get("compression", {}).get("sparsity") or {}, "after fine-tuning"
    rows = [Bar(str(name), float(v), f"{v * 100:.1f}%") for name, v in layers.items()
            if isinstance(v, (int, float))]
    if not rows:
        return ""
    return ("<h3>Sparsity per layer</h3>" + bars("chart-sparsity",
                                                  f"Fraction of zero weights per layer ({source})",
                                                  rows, lambda v: f"{v * 100:.0f}%"))


def _ops_chart(arts: list[dict], deploy: Any, limit: int = 25) -> str:
    dep = next((a for a in arts if a.get("name") == deploy), None)
    fig = dep["measurements"].get("ops") if dep else None
    if not isinstance(fig, dict) or not fig.get("rows"):
        return ""
    rows = sorted((r for r in fig["rows"] if isinstance(r, dict) and isinstance(r.get("share"), (int, float))),
                  key=lambda r: -r["share"])
    bars_ = []
    for r in rows[:limit]:
        cost = (f"{r['instructions']:,} instr" if isinstance(r.get("instructions"), int) else
                fmt_ms(r["ms"]) if isinstance(r.get("ms"), (int, float)) else
                f"{fmt_ms(r['estimate_ms'])} est." if isinstance(r.get("estimate_ms"), (int, float)) else "")
        bars_.append(Bar(f"#{r.get('index')} {r.get('op')} {r.get('name') or ''}".strip(), r["share"],
                         f"{r['share'] * 100:.1f}% {cost}".strip(),
                         "est" if fig.get("method") == "estimated" else "a"))
    more = f" (the {limit} costliest of {len(rows)})" if len(rows) > limit else ""
    return (f"<h3>Cost per operator in {escape(str(deploy))}</h3>"
            + bars("chart-ops", f"Share of the whole model's cost per operator{more}", bars_,
                   lambda v: f"{v * 100:.0f}%")
            + f'<p class="note">{escape(str(fig.get("by", "")))}</p>')


def _details(report: dict) -> str:
    notes = list(report.get("compression", {}).get("notes") or [])
    return ("<h2>Figures</h2>" + _figures_table(report)
            + "<h2>Notes and advice</h2>" + bullets([*notes, *report.get("advice", [])])
            + "<h2>Recipe in force</h2>" + pre_json(report.get("recipe", {}))
            + f'<p class="note">edgeprune {escape(str(report.get("tool", {}).get("version", "")))}, '
              f'schema {escape(str(report.get("schema_version", "")))}, seed {escape(str(report.get("seed", "")))}</p>')


def _figures_table(report: dict) -> str:
    names = ["size_bytes", "gzip_bytes", primary_metric(report), "latency_ms", "host_latency_ms",
             "latency_estimate_ms", "instructions_per_invoke", "arena_bytes", "flash_bytes"]
    arts = report.get("artifacts", [])
    names = [n for n in dict.fromkeys(names) if n and any(_fig(a, n) for a in arts)]
    rows = []
    for art in arts:
        cells = [escape(str(art.get("name")))]
        for n in names:
            fig = _fig(art, n)
            text = fmt_number(fig["value"], fig.get("unit", "")) if fig else "-"
            if fig and fig.get("method") == "estimated":
                text += " (estimate)"
            cells.append(escape(text))
        rows.append(cells)
    return table(["artifact", *names], rows, numeric=range(1, len(names) + 1), table_id="figures")


def _units(report: dict) -> dict[str, str]:
    """figure name -> unit, from the deployed artifact's figures."""
    out: dict[str, str] = {}
    for art in report.get("artifacts", []):
        for name, fig in art.get("measurements", {}).items():
            if isinstance(fig, dict) and isinstance(fig.get("unit"), str):
                out.setdefault(name, fig["unit"])
    return out


def _legacy_host_latency(report: dict) -> dict:
    """A report written before ``host_latency_ms`` existed carried this machine's time for
    another target as ``latency_ms`` (see check/models.py): draw it as this machine's."""
    from ...check.models import LEGACY_HOST_NOTE

    arts = []
    for art in report.get("artifacts", []):
        m = art.get("measurements") if isinstance(art, dict) else None
        old = m.get("latency_ms") if isinstance(m, dict) else None
        if isinstance(old, dict) and str(old.get("by", "")).endswith(LEGACY_HOST_NOTE) \
                and "host_latency_ms" not in m:
            m = {("host_latency_ms" if k == "latency_ms" else k): v for k, v in m.items()}
            art = {**art, "measurements": m}
        arts.append(art)
    return {**report, "artifacts": arts}
