"""The report's ``ops`` figure: per-operator cost, so a user sees which layer to prune.

Rows come from a device run with ``RunRequest.op_repeats`` (each operator timed
alone as a one-op model, :mod:`.op_models`): on this machine and SSH boards the
median wall time of its invokes (``ms``, measured); under emulation its
instructions (the median window, measured) and the board's latency model's
estimate (``estimate_ms``). ``share`` is the op's fraction of the sum over ops.
The figure's ``whole_model`` is the same cost of the whole model, so the gap the
one-op models leave (a fixed invoke overhead per op, no data left in the caches
by the previous op) is in the report.

Example row::

    {"index": 3, "op": "CONV_2D", "name": "model/block_1_expand/Conv2D", "instructions": 465816,
     "ms": None, "estimate_ms": 0.41, "share": 0.076}
"""

from __future__ import annotations

import statistics

from ..report.schema import figure

TOP = 10


def ops_figure(run, profile, whole: dict | None = None) -> dict | None:
    """``ops`` for a run with per-op rows; ``whole``: the whole model's latency figure."""
    if not run.ops:
        return None
    emulated = run.instructions_per_invoke is not None
    model_bytes = sum(op.get("weight_bytes", 0) for op in run.ops)
    rows = [_row(op, profile, emulated, model_bytes) for op in run.ops]
    key = "ms"
    if emulated:
        key = "estimate_ms" if any(r["estimate_ms"] is not None for r in rows) else "instructions"
    costs = [r[key] for r in rows]
    total = float(sum(c for c in costs if c is not None))
    for row, cost in zip(rows, costs):
        row["share"] = round(cost / total, 6) if total and cost is not None else 0.0
    failed = [f"{r['op']} (op {r['index']}): {r.pop('error')}" for r in rows if r.get("error")]
    for r in rows:
        r.pop("error", None)
    unit = "instructions" if key == "instructions" else "ms"
    by = (f"each operator alone as a one-op model: {run.runtime} on {run.where}, "
          + ("instructions counted per invoke (median window)"
             + (", ms from the board's latency model" if key == "estimate_ms" else "")
             if emulated else "median wall time of its invokes"))
    if whole is not None:
        whole = {k: whole[k] for k in ("value", "unit", "method", "by") if k in whole}
    extra = {"rows": rows, "sum_of_ops": round(total, 6) if unit == "ms" else int(total),
             "whole_model": whole, "ops_not_run": failed}
    return figure(round(total, 6) if unit == "ms" else int(total), unit, by,
                  method="estimated" if key == "estimate_ms" else "measured", **extra)


def _row(op: dict, profile, emulated: bool, model_bytes: int) -> dict:
    row = {"index": op["index"], "op": op["op"], "name": op["name"], "instructions": None,
           "ms": None, "estimate_ms": None, "share": 0.0, "error": op.get("error")}
    if emulated and op.get("instructions"):
        from ..devices.cost import median_window, op_estimate_ms

        windows = op["instructions"]
        row["instructions"] = int(statistics.median_low(windows))
        if profile.calibration is not None and op.get("instructions_by_class"):
            counts = median_window(windows, op["instructions_by_class"])
            row["estimate_ms"] = round(op_estimate_ms(
                counts, op.get("weight_bytes", 0), model_bytes, profile.calibration,
                profile.runtime.threads), 6)
    elif not emulated and op.get("latency_ms"):
        row["ms"] = round(float(statistics.median(op["latency_ms"])), 6)
    return row


def render_top_ops(name: str, fig: dict, top: int = TOP) -> list[str]:
    """Terminal lines: the ``top`` costliest ops of one artifact."""
    from ..report.units import duration_ms

    rows = sorted(fig["rows"], key=lambda r: -r["share"])[:top]
    if not rows:
        return []
    lines = [f"{name}: top {len(rows)} of {len(fig['rows'])} ops by {fig['unit']} "
             f"({fig['method']}; all in report.json)"]
    width = max(len(r["name"][:48]) for r in rows)
    for r in rows:
        cost = (f"{duration_ms(r['estimate_ms'])} est" if r["estimate_ms"] is not None else
                duration_ms(r["ms"]) if r["ms"] is not None else "-")
        insns = f"{r['instructions']:,} insns" if r["instructions"] is not None else ""
        lines.append(f"  {r['index']:4d} {r['op']:18} {r['name'][:48]:{width}}  {cost:>14} "
                     f"{insns:>18} {r['share']:6.1%}")
    return lines
