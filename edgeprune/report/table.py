"""The terminal table: each stage's size, task metrics (the task's headline three) and
latency, then each budget."""

from __future__ import annotations


def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _value(meas: dict, key: str):
    fig = meas.get(key)
    return None if fig is None else fig["value"]


_LABELS = {"f1_macro": "F1", "agreement": "agree", "max_abs_error": "max|err|"}


def _metric(value) -> str:
    return "-" if value is None else f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"


def render(report: dict) -> str:
    metrics = report.get("model", {}).get("task", {}).get("headline") or ["accuracy", "f1_macro", "agreement"]
    rows = [("artifact", "encoding", "size", "gzip", *(_LABELS.get(k, k) for k in metrics),
             "latency ms (p90)", f"{metrics[0]} measured by")]
    for art in report["artifacts"]:
        m = art["measurements"]
        lat = m.get("latency_ms") or m.get("host_latency_ms")
        latency = f"{lat['value']:.4f} ({lat['p90']:.4f})" if lat else "-"
        where = (m.get(metrics[0]) or {}).get("by", "")
        if "latency_ms" not in m and lat:
            latency += " host"
        if "latency_estimate_ms" in m:
            est = m["latency_estimate_ms"]
            latency += f" est {est['value']:.3f} ({est.get('threads', '?')}T)"
        rows.append((art["name"], art.get("encoding", "dense") if art["format"] != "keras" else "-",
                     _fmt_bytes(_value(m, "size_bytes")), _fmt_bytes(_value(m, "gzip_bytes")),
                     *(_metric(_value(m, k)) for k in metrics), latency, where))
    lines = _columns(rows)
    extra = []
    for art in report["artifacts"]:
        m = art["measurements"]
        if "instructions_per_invoke" in m:
            fig = m["instructions_per_invoke"]
            extra.append(f"{art['name']}: {fig['value']:,} instructions per invoke "
                         f"(spread {fig['spread']:.2%}, {fig['by']})")
        if "latency_estimate_ms" in m:
            est = m["latency_estimate_ms"]
            extra.append(f"{art['name']}: latency {est['value']:.4g} ms, {est['by']}")
        if "arena_bytes" in m and "ram_bytes" not in m:
            extra.append(f"{art['name']}: arena {m['arena_bytes']['value']:,} bytes, flash (model) "
                         f"{m['flash_bytes']['value']:,} bytes ({m['arena_bytes']['by']})")
        if "ram_bytes" in m:   # measured on the emulated microcontroller (edgeprune/mcu)
            fl, ram = m["flash_bytes"], m["ram_bytes"]
            extra.append(f"{art['name']}: flash {fl['value']:,} bytes (code {fl['code_bytes']:,} + model "
                         f"{fl['model_bytes']:,}), RAM {ram['value']:,} bytes (arena {ram['arena_bytes']:,} "
                         f"+ data {ram['static_data_bytes']:,} + stack {ram['stack_bytes']:,}); host-measured "
                         f"minimum arena {m['arena_bytes']['value']:,} bytes")
        if "host_agreement" in m:
            fig = m["host_agreement"]
            ok = "" if fig.get("passed", True) else f" FLAG: {fig.get('reason', 'outside the tolerance')}"
            extra.append(f"{art['name']}: top-1 agreement with this machine {fig['value']:.4f}, "
                         f"max |diff| {fig['max_abs_diff']:.3g} (expected {fig['expected']}){ok}")
        extra.extend(_integrity_lines(art))
        if "host_latency_ms" in m:
            extra.append(f"{art['name']}: latency measured on this machine, not the target "
                         f"({m['host_latency_ms']['by']}; shown, never gated)")
        sp = m.get("sparsity", {}).get("value")
        if sp and any(v > 0 for v in sp.values()):
            extra.append(f"{art['name']}: zero weights read back from the file: "
                         + ", ".join(f"{k} {v:.2f}" for k, v in sp.items()))
        if "max_abs_diff" in m:
            fig = m["max_abs_diff"]
            extra.append(f"{art['name']}: {art['file']} loads in Keras 3; max |diff| {fig['value']:.3g} "
                         f"on {fig['samples']} test samples ({fig['by']})")
        if art["format"] == "c_array":
            extra.append(f"{art['name']}: C sources {', '.join(art['settings']['files'])}, "
                         f"arena macro {art['settings']['arena_bytes']:,} bytes")
    k3 = report.get("model", {}).get("keras3")
    if k3 and k3.get("parity"):
        extra.insert(0, f"model: Keras {k3['keras_version']} file rebuilt in {k3['rebuilt_in']}; outputs match "
                        f"Keras 3 on {k3['parity']['samples']} test samples (max |diff| "
                        f"{k3['parity']['max_abs_diff']:.3g})")
    elif k3:
        extra.insert(0, f"model: Keras {k3['keras_version']} file converted as it is ({k3['why']})")
    if extra:
        lines.append("")
        lines.extend(extra)
    deployed = next((a for a in report["artifacts"] if a["name"] == report["deploy"]), None)
    if deployed and deployed["measurements"].get("ops"):
        from ..measure.ops import render_top_ops

        lines.append("")
        lines.extend(render_top_ops(deployed["name"], deployed["measurements"]["ops"]))
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
