"""``edgeprune check``: the CI gate, a thin click command over :mod:`edgeprune.check`.

Exit codes: 0 nothing regressed and every budget passed (or ``--update-baseline``),
3 a regression or a failed budget, 2 bad input (the error is printed as ``error: ...``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .check import MAX_BASELINE_SAMPLES, check_reports, load_reports_file, write_baseline
from .errors import EXIT_BUDGET, EXIT_OK, EdgepruneError

# option name -> Tolerances field; each is one click option below.
_TOLERANCE_OPTIONS = {
    "latency_rel": "latency_rel",
    "size_rel": "size_bytes_rel",
    "accuracy_points": "accuracy_points",
    "f1_points": "f1_points",
    "instructions_rel": "instructions_rel",
    "arena_rel": "arena_bytes_rel",
}
_NON_NEGATIVE = click.FloatRange(min=0)


@click.command("check")
@click.argument("report", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The committed baseline: a report.json, or a bundle of one report per target.")
@click.option("--update-baseline", is_flag=True,
              help="Write REPORT's targets into BASELINE (keeping its other targets; at most "
                   f"{MAX_BASELINE_SAMPLES} latency samples per figure), exit 0.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write JUnit XML here (one testsuite per target).")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a Markdown summary here (e.g. for $GITHUB_STEP_SUMMARY).")
@click.option("--latency-rel", type=_NON_NEGATIVE,
              help="Median latency may grow by this fraction (overrides the profile).")
@click.option("--size-rel", type=_NON_NEGATIVE,
              help="size/gzip/flash bytes may grow by this fraction (default 0).")
@click.option("--accuracy-points", type=_NON_NEGATIVE,
              help="Accuracy may drop by this many percentage points.")
@click.option("--f1-points", type=_NON_NEGATIVE,
              help="Macro F1 may drop by this many percentage points.")
@click.option("--instructions-rel", type=_NON_NEGATIVE,
              help="Instructions per invoke may grow by this fraction.")
@click.option("--arena-rel", type=_NON_NEGATIVE,
              help="Arena bytes may grow by this fraction.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def check(report: Path, baseline: Path, update_baseline: bool, junit_path: Path | None,
          markdown_path: Path | None, as_json: bool, **tolerances: float | None) -> None:
    """Compare REPORT (report.json from `edgeprune export`) with a committed BASELINE."""
    try:
        code = _run(report, baseline, update_baseline, junit_path, markdown_path, as_json,
                    {_TOLERANCE_OPTIONS[k]: v for k, v in tolerances.items() if v is not None})
    except EdgepruneError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code)


def _run(report_path: Path, baseline_path: Path, update: bool, junit_path: Path | None,
         markdown_path: Path | None, as_json: bool, overrides: dict[str, float]) -> int:
    report = load_reports_file(report_path, what="report")
    if update:
        targets = write_baseline(report, baseline_path)
        click.echo(f"baseline written: {baseline_path} (targets: {', '.join(targets)})")
        return EXIT_OK
    result = check_reports(report, load_reports_file(baseline_path, what="baseline"),
                           overrides=overrides, report_source=str(report_path),
                           baseline_source=str(baseline_path))
    if junit_path is not None:
        from .report.junit import write_junit

        write_junit(result, junit_path)
    if markdown_path is not None:
        from .report.markdown import render_markdown

        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(render_markdown(result), encoding="utf-8")
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else render_text(result))
    return EXIT_OK if result.passed else EXIT_BUDGET


def render_text(result) -> str:
    """The terminal table: one row per figure compared, budgets that failed, the verdict."""
    header = ("target", "artifact", "figure", "baseline", "new", "delta", "tolerance", "verdict")
    table = [header] + [(r.target, r.artifact, r.figure, r.shown(r.baseline), r.shown(r.value),
                         r.delta_text or "-", r.tolerance or "-", r.verdict.upper()
                         if r.failed else r.verdict) for r in result.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{r.target}/{r.artifact} {r.figure}: {r.detail}" for r in result.rows
             if r.detail and (r.failed or r.verdict == "improved" or r.figure == "latency_ms")]
    for g in result.growth:
        if any(r.failed for r in result.rows if (r.target, r.artifact) == (g.target, g.artifact)):
            notes += [f"{g.target}/{g.artifact} grew: {line}" for line in g.lines()]
    notes += [f"{t}: budget {b.get('name')} [{b.get('artifact')}] {b.get('verdict')}: "
              f"{b.get('value')} against limit {b.get('limit')}" for t, b in result.failed_budgets]
    summary = (f"{'FAIL' if not result.passed else 'PASS'}: {len(result.regressions)} "
               f"regression(s), {len(result.failed_budgets)} failed budget(s), "
               f"{len(result.improvements)} improvement(s) across "
               f"{len(result.targets)} target(s)")
    return "\n".join(lines + [""] + notes + ([""] if notes else [])
                     + [result.latency_method, summary])
