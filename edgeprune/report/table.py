"""The terminal table: each stage's size, task metrics (the task's headline three) and
latency, then each budget."""

from __future__ import annotations


from . import units


def _value(meas: dict, key: str):
    fig = meas.get(key)
    return None if fig is None else fig["value"]


_LABELS = {"f1_macro": "F1", "agreement": "agree", "max_abs_error": "max|err|"}
_LEGEND = {
    "agree": "agree: share of test samples whose top-1 class matches baseline.keras",
    "F1": "F1: macro-averaged F1 score over the classes",
    "max|err|": "max|err|: largest absolute error against the test targets",
    "gzip": "gzip: the file's size compressed with gzip (what a sparse or clustered file gains in transfer)",
    "latency": "latency: median (p90) wall time per invoke measured on the target itself",
    "host latency": "host latency: median on this machine, not the target (shown, never gated)",
    "estimate": "estimate: latency on the target estimated from counted instructions (see below)",
}


def _metric(value) -> str:
    return "-" if value is None else f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"


def _latency(fig: dict | None) -> str:
    if not fig:
        return "-"
    p90 = f" ({units.duration_ms(fig['p90'])})" if fig.get("p90") is not None else ""
    return units.duration_ms(fig["value"]) + p90


def render(report: dict, width: int | None = None) -> str:
    width = width or units.terminal_width()
    metrics = report.get("model", {}).get("task", {}).get("headline") or ["accuracy", "f1_macro", "agreement"]
    arts = report["artifacts"]
    has = {key: any(key in a["measurements"] for a in arts)
           for key in ("latency_ms", "host_latency_ms", "latency_estimate_ms")}
    labels = [_LABELS.get(k, k) for k in metrics]
    head = ["artifact", "encoding", "size", "gzip", *labels]
    head += [h for h, key in (("latency", "latency_ms"), ("host latency", "host_latency_ms"),
                              ("estimate", "latency_estimate_ms")) if has[key]]
    rows = [tuple(head + [f"{metrics[0]} measured by"])]
    for art in arts:
        m = art["measurements"]
        cells = [art["name"], art.get("encoding", "dense") if art["format"] != "keras" else "-",
                 units.size_bytes(_value(m, "size_bytes")), units.size_bytes(_value(m, "gzip_bytes")),
                 *(_metric(_value(m, k)) for k in metrics)]
        if has["latency_ms"]:
            cells.append(_latency(m.get("latency_ms")))
        if has["host_latency_ms"]:
            cells.append(_latency(m.get("host_latency_ms")))
        if has["latency_estimate_ms"]:
            est = m.get("latency_estimate_ms")
            cells.append(f"{units.duration_ms(est['value'])} ({est.get('threads', '?')}T)" if est else "-")
        cells.append((m.get(metrics[0]) or {}).get("by", ""))
        rows.append(tuple(cells))
    lines = _columns(rows)
    lines.extend(units.wrap("  ", "; ".join(_LEGEND[h] for h in head if h in _LEGEND and h != "gzip"), width))
    lines.extend(_recipe_lines(report))
    extra = _collapse(_artifact_notes(report))
    if extra:
        lines.append("")
        lines.extend(line for text in extra for line in units.wrap("", text, width))
    deployed = next((a for a in arts if a["name"] == report["deploy"]), None)
    if deployed and deployed["measurements"].get("ops"):
        from ..measure.ops import render_top_ops

        lines.append("")
        lines.extend(render_top_ops(deployed["name"], deployed["measurements"]["ops"]))
    lines.append("")
    budget_rows = [("budget", "artifact", "limit", "value", "verdict")]
    for b in report["budgets"]:
        verdict = b["verdict"].upper() + (f" ({b['note']})" if b.get("note") else "")
        budget_rows.append((b["name"], b["artifact"], units.by_figure(b["name"], b["limit"]),
                            units.by_figure(b["name"], b["value"]), verdict))
    lines.extend(_columns(budget_rows) if report["budgets"] else ["no budgets in this target"])
    for line in _backoff_lines((report.get("compression") or {}).get("backoff")):
        lines.extend(units.wrap("", line, width) if not line.startswith("  ") else [line])
    for advice in dict.fromkeys(report.get("advice", [])):
        lines.extend(units.wrap("advice: ", advice, width))
    lines.append(f"verdict: {report['verdict'].upper()} (target {report['target']['name']}, "
                 f"deploy {report['deploy']})")
    return "\n".join(lines)


def _recipe_lines(report: dict) -> list[str]:
    """The effective recipe, once, with where each value came from (compression.recipe_sources)."""
    sources = (report.get("compression") or {}).get("recipe_sources")
    if not sources or not report.get("recipe"):
        return []
    from ..recipe_sources import lines

    return [""] + lines(report["recipe"], sources)


def _collapse(notes: list[tuple[str, str]]) -> list[str]:
    """``(artifact, text)`` notes; artifacts with the same text share one line."""
    grouped: dict[str, list[str]] = {}
    for name, text in notes:
        grouped.setdefault(text, []).append(name)
    out = []
    for text, names in grouped.items():
        if not names[0]:
            out.append(text)
        else:
            out.append(f"{', '.join(names)}: {text}")
    return out


def _artifact_notes(report: dict) -> list[tuple[str, str]]:
    extra: list[tuple[str, str]] = []
    for art in report["artifacts"]:
        m = art["measurements"]
        name = art["name"]
        if "instructions_per_invoke" in m:
            fig = m["instructions_per_invoke"]
            extra.append((name, f"{fig['value']:,} instructions per invoke (spread {fig['spread']:.2%}, "
                                f"{fig['by']})"))
        if "latency_estimate_ms" in m:
            est = m["latency_estimate_ms"]
            extra.append((name, f"latency estimate {units.duration_ms(est['value'])}, {est['by']}"))
        if "arena_bytes" in m and "ram_bytes" not in m:
            extra.append((name, f"arena {units.count(m['arena_bytes']['value'])} B, flash (model) "
                                f"{units.count(m['flash_bytes']['value'])} B ({m['arena_bytes']['by']})"))
        if "ram_bytes" in m:   # measured on the emulated microcontroller (edgeprune/mcu)
            fl, ram = m["flash_bytes"], m["ram_bytes"]
            extra.append((name, f"flash {fl['value']:,} B (code {fl['code_bytes']:,} + model "
                                f"{fl['model_bytes']:,}), RAM {ram['value']:,} B (arena {ram['arena_bytes']:,} "
                                f"+ data {ram['static_data_bytes']:,} + stack {ram['stack_bytes']:,}); "
                                f"host-measured minimum arena {m['arena_bytes']['value']:,} B"))
        if "host_agreement" in m:
            fig = m["host_agreement"]
            ok = "" if fig.get("passed", True) else f" FLAG: {fig.get('reason', 'outside the tolerance')}"
            extra.append((name, f"top-1 agreement with this machine {fig['value']:.4f}, max |diff| "
                                f"{fig['max_abs_diff']:.3g} (expected {fig['expected']}){ok}"))
        extra.extend(("", line) for line in _integrity_lines(art))
        if "host_latency_ms" in m:
            extra.append((name, f"latency measured on this machine, not the target "
                                f"({m['host_latency_ms']['by']}; shown, never gated)"))
        sp = m.get("sparsity", {}).get("value")
        if sp and any(v > 0 for v in sp.values()):
            extra.append((name, "zero weights read back from the file: "
                                + ", ".join(f"{k} {v:.2f}" for k, v in sp.items())))
        if "max_abs_diff" in m:
            fig = m["max_abs_diff"]
            extra.append((name, f"{art['file']} loads in Keras 3; max |diff| {fig['value']:.3g} "
                                f"on {fig['samples']} test samples ({fig['by']})"))
        if art["format"] == "c_array":
            extra.append((name, f"C sources {', '.join(art['settings']['files'])}, "
                                f"arena macro {art['settings']['arena_bytes']:,} bytes"))
    k3 = report.get("model", {}).get("keras3")
    if k3 and k3.get("parity"):
        extra.insert(0, ("model", f"Keras {k3['keras_version']} file rebuilt in {k3['rebuilt_in']}; outputs "
                                  f"match Keras 3 on {k3['parity']['samples']} test samples (max |diff| "
                                  f"{k3['parity']['max_abs_diff']:.3g})"))
    elif k3:
        extra.insert(0, ("model", f"Keras {k3['keras_version']} file converted as it is ({k3['why']})"))
    return extra


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
            if check.get("nonfinite_outputs"):
                shown = check.get("reason", "NaN or infinite outputs")
            elif check.get("max_abs_diff") == 0:
                shown = "bit-exact"
            else:
                shown = f"nrmse {check.get('nrmse') or 0:.2g}"
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
