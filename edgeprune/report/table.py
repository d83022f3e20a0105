"""The terminal table: each stage's size, accuracy and latency, then each budget."""

from __future__ import annotations


def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _value(meas: dict, key: str):
    fig = meas.get(key)
    return None if fig is None else fig["value"]


def render(report: dict) -> str:
    rows = [("artifact", "encoding", "size", "gzip", "accuracy", "F1", "agree", "latency ms (p90)",
             "accuracy measured by")]
    for art in report["artifacts"]:
        m = art["measurements"]
        lat = m.get("latency_ms")
        latency = f"{lat['value']:.4f} ({lat['p90']:.4f})" if lat else "-"
        where = (m.get("accuracy") or {}).get("by", "")
        if lat and "not the target" in lat["by"]:
            latency += " host"
        if "latency_estimate_ms" in m:
            latency += f" est {m['latency_estimate_ms']['value']:.3f}"
        acc, f1, agree = _value(m, "accuracy"), _value(m, "f1_macro"), _value(m, "agreement")
        rows.append((art["name"], art.get("encoding", "dense") if art["format"] != "keras" else "-",
                     _fmt_bytes(_value(m, "size_bytes")), _fmt_bytes(_value(m, "gzip_bytes")),
                     f"{acc:.4f}" if acc is not None else "-", f"{f1:.4f}" if f1 is not None else "-",
                     f"{agree:.4f}" if agree is not None else "-", latency, where))
    lines = _columns(rows)
    extra = []
    for art in report["artifacts"]:
        m = art["measurements"]
        if "instructions_per_invoke" in m:
            fig = m["instructions_per_invoke"]
            extra.append(f"{art['name']}: {fig['value']:,} instructions per invoke "
                         f"(spread {fig['spread']:.2%}, {fig['by']})")
        if "arena_bytes" in m:
            extra.append(f"{art['name']}: arena {m['arena_bytes']['value']:,} bytes, flash (model) "
                         f"{m['flash_bytes']['value']:,} bytes ({m['arena_bytes']['by']})")
        if "host_agreement" in m:
            fig = m["host_agreement"]
            ok = "" if fig.get("passed", True) else f" FLAG: {fig.get('reason', 'outside the tolerance')}"
            extra.append(f"{art['name']}: top-1 agreement with this machine {fig['value']:.4f}, "
                         f"max |diff| {fig['max_abs_diff']:.3g} (expected {fig['expected']}){ok}")
        extra.extend(_integrity_lines(art))
        if "latency_ms" in m and "not the target" in m["latency_ms"]["by"]:
            extra.append(f"{art['name']}: latency measured on this machine, not the target "
                         f"({m['latency_ms']['by']})")
        sp = m.get("sparsity", {}).get("value")
        if sp and any(v > 0 for v in sp.values()):
            extra.append(f"{art['name']}: zero weights read back from the file: "
                         + ", ".join(f"{k} {v:.2f}" for k, v in sp.items()))
        if art["format"] == "c_array":
            extra.append(f"{art['name']}: C sources {', '.join(art['settings']['files'])}, "
                         f"arena macro {art['settings']['arena_bytes']:,} bytes")
    if extra:
        lines.append("")
        lines.extend(extra)
    lines.append("")
    budget_rows = [("budget", "artifact", "limit", "value", "verdict")]
    for b in report["budgets"]:
        value = "-" if b["value"] is None else f"{b['value']:.6g}"
        verdict = b["verdict"].upper() + (f" ({b['note']})" if b.get("note") else "")
        budget_rows.append((b["name"], b["artifact"], f"{b['limit']:.6g}", value, verdict))
    lines.extend(_columns(budget_rows) if report["budgets"] else ["no budgets in this target"])
    lines.extend(_backoff_lines((report.get("compression") or {}).get("backoff")))
    for line in report.get("advice", []):
        lines.append(f"advice: {line}")
    lines.append(f"verdict: {report['verdict'].upper()} (target {report['target']['name']}, "
                 f"deploy {report['deploy']})")
    return "\n".join(lines)


def _integrity_lines(art: dict) -> list[str]:
    """The cross-checks of one file: a short line when they pass, a flag when not."""
    m = art["measurements"]
    out = []
    fig = m.get("integrity")
    if fig is not None:
        parts = []
        for check in fig["checks"]:
            if check["against"].startswith("this machine"):
                continue  # shown with the device's agreement line
            shown = "bit-exact" if check.get("max_abs_diff") == 0 else f"nrmse {check.get('nrmse', 0):.2g}"
            if "top1_agreement" in check:
                shown += f", top-1 {check['top1_agreement']:.4f}"
            parts.append(f"vs {check['against']} {shown} on {check.get('samples', '?')} test samples"
                         + ("" if check["passed"] else " FAILED"))
        if fig["passed"] and parts:
            out.append(f"{art['name']}: outputs agree: " + "; ".join(parts))
        else:
            out.append(f"flag: {art['name']} is not deployed (moved to rejected/): "
                       + art.get("settings", {}).get("rejected", "; ".join(parts)))
    gap = m.get("sibling_gap")
    if gap is not None and gap.get("flagged"):
        out.append(f"flag: {art['name']} scores {gap['value']:.4f} below {gap['against']} (tolerance "
                   f"{gap['tolerance']:.4f}); likely cause: {gap['likely_cause']}")
    return out


def _backoff_lines(backoff: dict | None) -> list[str]:
    if not backoff:
        return []
    if not backoff.get("ran"):
        if backoff.get("would_try"):
            return [f"back-off: not run: {backoff['why']}; would try: {', '.join(backoff['would_try'])}"]
        return []
    out = [f"back-off: budget {backoff['budget_s']:.0f} s ({backoff['budget']}); {backoff['stopped']}; "
           f"deployed: {backoff['chosen']}"]
    for n, attempt in enumerate(backoff["attempts"]):
        metric = f", accuracy {attempt['metric']:.4f}" if attempt.get("metric") is not None else ""
        changes = f" ({'; '.join(attempt['changes'])})" if attempt["changes"] else ""
        note = f": {attempt['note']}" if attempt.get("note") else ""
        out.append(f"  attempt {n}: {attempt['label']}{changes}: {attempt['state']}{metric}, "
                   f"{attempt['seconds']:.0f} s{note}")
    return out


def _columns(rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
