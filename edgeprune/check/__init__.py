"""Regression check: compare a new ``report.json`` with a committed baseline.

``edgeprune check`` is the CI gate. It matches the two reports target by target and
artifact by artifact (on the artifact's ``name``) and compares each figure that is a
property of the file on its target (:mod:`.rules`) with the tolerance the report's
target profile allows (``report["target"]["tolerances"]``, else the
:class:`~edgeprune.targets.Tolerances` defaults; a caller can override any of them).

Modules:

* :mod:`.models`: the report as ``check`` reads it (strict pydantic); the one
  validation path of ``check`` and ``--update-baseline``.
* :mod:`.bundle`: report and baseline files (one report, or a bundle per target).
* :mod:`.baseline`: ``--update-baseline`` (whole, atomic, keeps the artifacts).
* :mod:`.rules`: which figures are gated, and how.
* :mod:`.compare`: the comparison; :mod:`.latency`: how latency is judged;
  :mod:`.remeasure`: A/B re-measurement on the target's device.
* :mod:`.render`: the terminal text (JUnit and Markdown are in :mod:`edgeprune.report`).

Example::

    from edgeprune.check import check_files
    result = check_files("dist/host/report.json", "baselines/host.json")
    if not result.passed:
        print([row.figure for row in result.regressions])
"""

from __future__ import annotations

import os
from pathlib import Path

from .baseline import MAX_BASELINE_SAMPLES, BaselineWrite, write_baseline
from .bundle import load_reports_file, reports_by_target
from .compare import check_reports
from .latency import ALPHA, LATENCY_METHOD, mann_whitney_u
from .remeasure import Remeasure
from .render import render_text
from .result import FAILING, CheckResult, Growth, Row
from .rules import RULES, FigureRule


def check_files(report: str | os.PathLike, baseline: str | os.PathLike, *,
                overrides: dict | None = None, remeasure: bool = True) -> CheckResult:
    """Check the report file against the baseline file; latency is re-measured A/B from
    the artifacts next to the report and kept beside the baseline, unless ``remeasure``
    is false (then the fallback rule judges it)."""
    report, baseline = Path(report), Path(baseline)
    return check_reports(load_reports_file(report, what="report"),
                         load_reports_file(baseline, what="baseline"), overrides=overrides,
                         report_source=str(report), baseline_source=str(baseline),
                         remeasure=Remeasure(report.parent, baseline, enabled=remeasure))


def update_baseline(report: str | os.PathLike, baseline: str | os.PathLike) -> BaselineWrite:
    """Write the report file's targets (and their artifacts) into the baseline file."""
    report = Path(report)
    return write_baseline(load_reports_file(report, what="report"), baseline,
                          report_dir=report.parent, report_source=str(report))


__all__ = ["ALPHA", "FAILING", "LATENCY_METHOD", "MAX_BASELINE_SAMPLES", "RULES", "BaselineWrite",
           "CheckResult", "FigureRule", "Growth", "Remeasure", "Row", "check_files",
           "check_reports", "load_reports_file", "mann_whitney_u", "render_text",
           "reports_by_target", "update_baseline", "write_baseline"]


from ..api import callable_package  # noqa: E402  (edgeprune.check(...) is the Python API's check)

callable_package(__name__, "check")
