"""What a trial's export report gives the search: objectives, constraint, ranking, Pareto fronts.

Objectives (both minimised): the deployed artifact's gzip size, and its target cost, the
first of the target's cost figures its report has (:data:`COST_FIGURES`: exact
instructions on an emulated core, an estimate, a measured latency on the target itself,
the arena). Constraint: every budget of the target. A budget that passes contributes 0,
one that fails its relative excess over the limit (at least 1e-6), one that could not be
measured 1; Optuna's samplers take a trial as feasible when the sum is 0.
"""

from __future__ import annotations

import math

#: Cost figures by device kind, most exact first.
COST_FIGURES = {
    "local": ("latency_ms",),
    "ssh": ("latency_ms",),
    "qemu": ("instructions_per_invoke", "latency_estimate_ms"),
    "tflm": ("instructions_per_invoke", "latency_estimate_ms", "arena_bytes"),
    "rules": ("host_latency_ms",),
}
#: The objective value of a cost the report lacks: worse than any measured one.
MISSING = 1e30
QUALITY = ("max_accuracy_drop", "max_metric_drop")


def summarize(report: dict, primary: str, cost_names: tuple[str, ...]) -> dict:
    """The trial's row from its export's report.json (as a dict)."""
    deploy = next(a for a in report["artifacts"] if a["name"] == report["deploy"])
    baseline = next(a for a in report["artifacts"] if a["name"] == "baseline.keras")
    m = deploy["measurements"]
    cost_name = next((n for n in cost_names if n in m and _number(m[n].get("value"))), None)
    metric = _value(m, primary)
    base_metric = _value(baseline["measurements"], primary)
    budgets = [{k: b[k] for k in ("name", "limit", "value", "verdict")} for b in report["budgets"]]
    return {
        "deploy": deploy["name"], "file": deploy["file"],
        "sha256": deploy["sha256"],
        "size_bytes": _value(m, "size_bytes"), "gzip_bytes": _value(m, "gzip_bytes"),
        "cost_name": cost_name, "cost": _value(m, cost_name) if cost_name else None,
        "metric_name": primary, "metric": metric, "baseline_metric": base_metric,
        "metric_drop": next((b["value"] for b in budgets if b["name"] in QUALITY), None),
        "budgets": budgets, "violation": violation(budgets),
        "failed": [b["name"] for b in budgets if b["verdict"] != "pass"],
    }


def objectives(summary: dict) -> tuple[float, float]:
    size = summary["gzip_bytes"] if summary["gzip_bytes"] is not None else summary["size_bytes"]
    cost = summary["cost"]
    return (float(size) if _number(size) else MISSING, float(cost) if _number(cost) else MISSING)


def violation(budgets: list[dict]) -> float:
    total = 0.0
    for b in budgets:
        if b["verdict"] == "pass":
            continue
        if b["verdict"] == "fail" and _number(b["value"]) and _number(b["limit"]) and b["limit"]:
            total += max((b["value"] - b["limit"]) / abs(b["limit"]), 1e-6)
        else:
            total += 1.0
    return total


def rank_key(row: dict) -> tuple:
    """Smaller is better: meets every budget, then smaller deployed file, then lower cost,
    then the better metric, then the earlier trial."""
    size, cost = objectives(row)
    metric = row.get("metric")
    better = -metric if _number(metric) and row.get("higher_is_better", True) else (
        metric if _number(metric) else math.inf)
    return (row["violation"] > 0, row["violation"], size, cost, better, row["number"])


def pareto(rows: list[dict], x: str, higher_is_better: bool) -> list[int]:
    """Trial numbers on the front of the task metric (better) against ``x`` (lower):
    rows no other row beats on both. Rows without the numbers are left out."""
    points = [(r["number"], _x(r, x), r["metric"]) for r in rows
              if _number(_x(r, x)) and _number(r.get("metric"))]
    sign = 1.0 if higher_is_better else -1.0

    def beats(a, b):      # a dominates b
        return (a[1] <= b[1] and sign * a[2] >= sign * b[2]) and (a[1] < b[1] or sign * a[2] > sign * b[2])

    front = [p for p in points if not any(beats(q, p) for q in points if q is not p)]
    return [p[0] for p in sorted(front, key=lambda p: (p[1], p[0]))]


def _x(row: dict, x: str):
    if x == "size":
        return row["gzip_bytes"] if row.get("gzip_bytes") is not None else row.get("size_bytes")
    return row.get("cost")


def _value(measurements: dict, name: str | None):
    fig = measurements.get(name) if name else None
    return fig.get("value") if isinstance(fig, dict) else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
