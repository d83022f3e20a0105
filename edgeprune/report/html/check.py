"""check.html: what `edgeprune check` found, per target and artifact: each figure's baseline
and new value with the change, the tolerance in force and the verdict, and a chart of the
relative change per figure (red: regressed; green: within or improved)."""

from __future__ import annotations

from html import escape

from .page import cell, document, table, verdict_cell
from .svg import Bar, bars

_BAD = {"regressed", "missing", "incomparable"}


def render_check(result: dict) -> str:
    """The page for a :meth:`CheckResult.to_dict` (the ``check --json`` output)."""
    verdict = str(result.get("verdict", "fail"))
    counts = result.get("counts", {})
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
    body = [f"<h1>edgeprune check: {escape(', '.join(map(str, result.get('targets', []))))}</h1>",
            f'<section id="verdict" class="verdict {"pass" if verdict == "pass" else "fail"}">'
            f'<div class="big">{escape(verdict.upper())}</div><div>{escape(summary)}<br>'
            f'latency judged by: {escape(str(result.get("latency_method") or "-"))}</div></section>']
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in result.get("rows", []):
        groups.setdefault((str(row.get("target")), str(row.get("artifact"))), []).append(row)
    # artifacts with a failing row first, then those where something changed
    order = sorted(groups.items(), key=lambda kv: (not any(r.get("verdict") in _BAD for r in kv[1]),
                                                   all(r.get("verdict") == "unchanged" for r in kv[1])))
    for n, ((target, artifact), rows) in enumerate(order):
        body.append(f"<h2>{escape(target)}: {escape(artifact)}</h2>")
        chart = [Bar(str(r["figure"]), abs(r["delta_rel"]) * 100, f"{r['delta_rel'] * 100:+.2f}%",
                     "fail" if r.get("verdict") in _BAD else "deploy" if r["delta_rel"] <= 0 else "a")
                 for r in rows if isinstance(r.get("delta_rel"), (int, float)) and r["delta_rel"] != 0]
        if chart:
            body.append(bars(f"chart-check-{n}", f"{target} {artifact}: change from the baseline per "
                                                 "figure (bar length: size of the change)",
                             chart, lambda v: f"{v:.3g}%"))
        body.append(table(["figure", "baseline", "new", "change", "tolerance", "verdict", "how"],
                          [[cell(r.get("figure")), cell(_shown(r, "baseline")), cell(_shown(r, "value")),
                            cell(r.get("delta_text")), cell(r.get("tolerance")),
                            verdict_cell(str(r.get("verdict"))),
                            f'<span class="note">{cell(r.get("detail") or "")}</span>'] for r in rows],
                          numeric=(1, 2, 3)))
    budgets = [(t, b) for t, bs in result.get("budgets", {}).items() for b in bs]
    if budgets:
        body.append("<h2>Budgets of the new report</h2>" + table(
            ["target", "budget", "artifact", "value", "limit", "verdict"],
            [[cell(t), cell(b.get("name")), cell(b.get("artifact")), cell(b.get("value")),
              cell(b.get("limit")), verdict_cell(str(b.get("verdict")))] for t, b in budgets],
            numeric=(3, 4), table_id="check-budgets"))
    return document(f"edgeprune check: {verdict}", "".join(body))


def _shown(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if row.get("unit") in ("fraction", "") and isinstance(value, float) and 0 <= value <= 1:
        return f"{value * 100:.2f}%"
    text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    return f"{text} {row.get('unit') or ''}".rstrip()
