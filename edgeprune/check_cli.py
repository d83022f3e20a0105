"""``edgeprune check``: the CI gate, a thin click command over :mod:`edgeprune.check`.

Exit codes: 0 nothing regressed and every budget passed (or ``--update-baseline``),
3 a regression or a failed budget, 2 bad input (the error is printed as ``error: ...``),
4 the device of an A/B re-measurement (an SSH board) could not be reached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .check import MAX_BASELINE_SAMPLES, check_files, render_text, update_baseline
from .errors import EXIT_BUDGET, EXIT_OK, EdgepruneError

# option name -> Tolerances field; each is one click option below.
_TOLERANCE_OPTIONS = {
    "latency_rel": "latency_rel",
    "size_rel": "size_bytes_rel",
    "accuracy_points": "accuracy_points",
    "f1_points": "f1_points",
    "instructions_rel": "instructions_rel",
    "arena_rel": "arena_bytes_rel",
    "metric_rel": "metric_rel",
}
_NON_NEGATIVE = click.FloatRange(min=0)


@click.command("check")
@click.argument("report", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The committed baseline: a report.json, or a bundle of one report per target.")
@click.option("--update-baseline", is_flag=True,
              help="Write REPORT's targets into BASELINE (keeping its other targets; at most "
                   f"{MAX_BASELINE_SAMPLES} latency samples per figure) and keep the artifacts "
                   "whose latency is gated beside it, in BASELINE_NAME.artifacts/; exit 0.")
@click.option("--all", "show_all", is_flag=True,
              help="Print every row, not only those that changed, failed or were not compared.")
@click.option("--remeasure/--no-remeasure", default=True, show_default=True,
              help="Re-measure latency A/B (baseline and new artifact, now, on the target's "
                   "device); --no-remeasure judges it by the control-normalised fallback.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write JUnit XML here (one testsuite per target).")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a Markdown summary here (e.g. for $GITHUB_STEP_SUMMARY).")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the comparison as a self-contained HTML page here (e.g. check.html).")
@click.option("--latency-rel", type=_NON_NEGATIVE,
              help="Latency may grow by this fraction (overrides the profile).")
@click.option("--size-rel", type=_NON_NEGATIVE,
              help="size/gzip/flash bytes may grow by this fraction (default 0).")
@click.option("--accuracy-points", type=_NON_NEGATIVE,
              help="Accuracy may drop by this many percentage points.")
@click.option("--f1-points", type=_NON_NEGATIVE,
              help="Macro F1 may drop by this many percentage points.")
@click.option("--instructions-rel", type=_NON_NEGATIVE,
              help="Instructions per invoke (and each instruction class, as a share of the "
                   "total) may grow by this fraction.")
@click.option("--arena-rel", type=_NON_NEGATIVE,
              help="Arena bytes may grow by this fraction.")
@click.option("--metric-rel", type=_NON_NEGATIVE,
              help="A regression task's errors (mse, mae, max_abs_error) may grow by this fraction "
                   "(default 0.05).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def check(report: Path, baseline: Path, update_baseline: bool, show_all: bool, remeasure: bool,
          junit_path: Path | None, markdown_path: Path | None, html_path: Path | None, as_json: bool,
          **tolerances: float | None) -> None:
    """Compare REPORT (report.json from `edgeprune export`) with a committed BASELINE."""
    overrides = {_TOLERANCE_OPTIONS[k]: v for k, v in tolerances.items() if v is not None}
    try:
        if update_baseline:
            code = _update(report, baseline)
        else:
            code = _check(report, baseline, overrides, remeasure, show_all, junit_path,
                          markdown_path, as_json, html_path)
    except EdgepruneError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code)


def _update(report: Path, baseline: Path) -> int:
    written = update_baseline(report, baseline)
    for note in written.notes:
        click.echo(f"note: {note}")
    kept = f"; {len(written.artifacts)} artifact(s) kept for A/B re-measurement" \
        if written.artifacts else ""
    click.echo(f"baseline written: {baseline} (targets: {', '.join(written.targets)}){kept}")
    return EXIT_OK


def _check(report: Path, baseline: Path, overrides: dict[str, float], remeasure: bool,
           show_all: bool, junit_path: Path | None, markdown_path: Path | None,
           as_json: bool, html_path: Path | None = None) -> int:
    result = check_files(report, baseline, overrides=overrides, remeasure=remeasure)
    if html_path is not None:
        from .output import write_atomic
        from .report.html import render_check

        write_atomic(html_path, render_check(result.to_dict()).encode("utf-8"))
    if junit_path is not None:
        from .report.junit import write_junit

        write_junit(result, junit_path)
    if markdown_path is not None:
        from .output import write_atomic
        from .report.markdown import render_markdown

        write_atomic(markdown_path, render_markdown(result).encode("utf-8"))
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json
               else render_text(result, show_all=show_all))
    return EXIT_OK if result.passed else EXIT_BUDGET
