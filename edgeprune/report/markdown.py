"""A Markdown summary of a :class:`~edgeprune.check.CheckResult` for CI job pages.

Written for GitHub's step summary (``cat summary.md >> "$GITHUB_STEP_SUMMARY"``),
readable on any Markdown page: the verdict first, then per target the rows that need
a look (regressions, improvements, new and missing figures, latency not compared,
failed budgets) with what grew, and the full table of deltas folded in a
``<details>`` block (figures shown for information only included), then how latency
was judged.
"""

from __future__ import annotations

_MARK = {"regressed": "❌ regressed", "missing": "❌ missing", "incomparable": "❌ incomparable",
         "improved": "🟢 improved", "new": "🆕 new", "within": "✅ within", "unchanged": "✅ unchanged",
         "not_compared": "⚠️ not compared", "shown": "ℹ️ shown, not gated"}
_HEADER = ("| artifact | figure | baseline | new | delta | tolerance | verdict |\n"
           "|---|---|---:|---:|---:|---|---|")


def render_markdown(result) -> str:
    """The summary of ``result`` (an ``edgeprune.check.CheckResult``) as Markdown text."""
    lines = [f"## edgeprune check: {_headline(result)}", ""]
    for target in result.targets:
        lines += _target_section(result, target)
    lines += [f"_Latency method_: {result.latency_method}.", ""]
    return "\n".join(lines)


def _headline(result) -> str:
    bad = len(result.regressions) + len(result.failed_budgets)
    parts = [f"{len(result.regressions)} regression(s)",
             f"{len(result.failed_budgets)} failed budget(s)",
             f"{len(result.improvements)} improvement(s)"]
    if result.not_compared:
        parts.append(f"{len(result.not_compared)} not compared")
    verdict = "❌ FAIL" if bad else "✅ PASS"
    return f"{verdict} ({', '.join(parts)}; targets: {', '.join(result.targets)})"


def _target_section(result, target: str) -> list[str]:
    rows = [r for r in result.rows if r.target == target]
    notable = [r for r in rows if r.notable]
    lines = [f"### {_cell(target)}", ""]
    failed = [b for t, b in result.failed_budgets if t == target]
    budgets = result.budgets[target]
    if budgets:
        lines += [f"Budgets: {len(budgets) - len(failed)} of {len(budgets)} pass.", ""]
    if failed:
        lines += ["| budget | artifact | value | limit | verdict |", "|---|---|---:|---:|---|"]
        lines += [f"| {_cell(b.get('name'))} | {_cell(b.get('artifact'))} | {b.get('value')} "
                  f"| {b.get('limit')} | ❌ {b.get('verdict')} |" for b in failed]
        lines.append("")
    if notable:
        lines += [_HEADER] + [_row(r) for r in notable] + [""]
    else:
        lines += ["Every figure is within its tolerance of the baseline.", ""]
    for art in dict.fromkeys(r.artifact for r in notable if r.failed):
        growth = result.growth_for(target, art)
        if growth is not None:
            lines += [f"What grew in `{art}`:", ""]
            lines += [f"- {_cell(line)}" for line in growth.lines()] + [""]
    lines += [f"<details><summary>All {len(rows)} comparisons for {_cell(target)}</summary>",
              "", _HEADER] + [_row(r) for r in rows] + ["", "</details>", ""]
    return lines


def _row(row) -> str:
    verdict = _MARK.get(row.verdict, row.verdict)
    delta = row.delta_text or "-"
    if row.detail and row.figure == "latency_ms":
        delta += f"<br><sub>{_cell(row.detail)}</sub>"
    elif row.detail and row.verdict in ("missing", "incomparable", "new", "not_compared"):
        verdict += f"<br><sub>{_cell(row.detail)}</sub>"
    return (f"| {_cell(row.artifact)} | {row.figure} | {_cell(row.shown(row.baseline))} "
            f"| {_cell(row.shown(row.value))} | {delta} | {_cell(row.tolerance or '-')} "
            f"| {verdict} |")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
