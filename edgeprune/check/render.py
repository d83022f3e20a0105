"""The terminal text of a :class:`~.result.CheckResult`.

By default only the rows that need a look: regressed, missing, incomparable,
improved, new, or not compared; each failed artifact with what grew in it (tensors,
op counts, per-op cost). ``show_all`` lists every row, the ones shown for
information (host wall-clock of a non-host target) included.
"""

from __future__ import annotations

from .result import CheckResult, Row

_HEADER = ("target", "artifact", "figure", "baseline", "new", "delta", "tolerance", "verdict")


def render_text(result: CheckResult, *, show_all: bool = False) -> str:
    rows = result.rows if show_all else [r for r in result.rows if r.notable]
    lines = _table(rows) if rows else ["No figure changed beyond its tolerance."]
    notes = [f"{r.target}/{r.artifact} {r.figure}: {r.detail}" for r in rows
             if r.detail and (show_all or r.verdict != "new")]
    for g in result.growth:
        if any(r.failed for r in result.rows if (r.target, r.artifact) == (g.target, g.artifact)):
            notes += [f"{g.target}/{g.artifact} grew: {line}" for line in g.lines()]
    notes += [f"{t}: budget {b.get('name')} [{b.get('artifact')}] {b.get('verdict')}: "
              f"{b.get('value')} against limit {b.get('limit')}" for t, b in result.failed_budgets]
    hidden = _hidden(result) if not show_all else ""
    summary = (f"{'FAIL' if not result.passed else 'PASS'}: {len(result.regressions)} "
               f"regression(s), {len(result.failed_budgets)} failed budget(s), "
               f"{len(result.improvements)} improvement(s), {len(result.not_compared)} not "
               f"compared, across {len(result.targets)} target(s) in {result.seconds:.1f} s")
    out = lines + [""] + notes + ([""] if notes else [])
    if hidden:
        out.append(hidden)
    return "\n".join(out + [result.latency_method, summary])


def _table(rows: list[Row]) -> list[str]:
    table = [_HEADER] + [(r.target, r.artifact, r.figure, r.shown(r.baseline), r.shown(r.value),
                          r.delta_text or "-", r.tolerance or "-",
                          r.verdict.upper() if r.failed else r.verdict) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _hidden(result: CheckResult) -> str:
    quiet = [r for r in result.rows if not r.notable]
    if not quiet:
        return ""
    shown = sum(r.verdict == "shown" for r in quiet)
    text = f"{len(quiet) - shown} figure(s) unchanged or within tolerance"
    if shown:
        text += f", {shown} shown for information only (never gated)"
    return text + "; --all lists every row."
