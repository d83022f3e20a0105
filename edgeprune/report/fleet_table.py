"""The terminal table comparing the targets of one run side by side (OUT/summary.json)."""

from __future__ import annotations

from . import units


def render_targets(summary: dict) -> str:
    targets = summary["targets"]
    metric = next((t["primary_metric"] for t in targets.values() if "primary_metric" in t), "accuracy")
    rows = [("target", "verdict", "deploy", "size", metric, "latency", "estimate", "host latency",
             "arena", "missed budgets")]
    for name, t in targets.items():
        if t["verdict"] == "error":
            rows.append((name, f"ERROR (exit {t['exit_code']})", "-", "-", "-", "-", "-", "-", "-",
                         t["error"].splitlines()[0][:60]))
            continue
        f = t["figures"]
        missed = [b["name"] for b in t["budgets"] if b["verdict"] != "pass"]
        rows.append((name, t["verdict"].upper(), t["deploy"], units.size_bytes(f.get("size_bytes")),
                     "-" if f.get(metric) is None else f"{f[metric]:.4f}",
                     units.duration_ms(f.get("latency_ms")), units.duration_ms(f.get("latency_estimate_ms")),
                     units.duration_ms(f.get("host_latency_ms")), units.size_bytes(f.get("arena_bytes")),
                     ", ".join(missed) or "-"))
    from .table import _columns

    lines = _columns(rows)
    lines.append("  latency: measured on the target itself; estimate: from counted instructions (emulated "
                 "boards, microcontrollers); host latency: this machine, never gated")
    for name, t in targets.items():
        if "report" in t:
            lines.append(f"{name}: {t['report']}")
    lines.append(f"verdict: {summary['verdict'].upper()} ({len(targets)} targets; exit {summary['exit_code']})")
    return "\n".join(lines)
