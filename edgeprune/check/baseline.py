"""``--update-baseline``: write a report's targets into a baseline file, whole and atomically.

The report is validated exactly as ``check`` validates it (:func:`.bundle.reports_by_target`).
Another target's entry already in the file is kept byte for byte, even one this
edgeprune cannot read (and the result says so); an entry of the same target written
by a newer edgeprune is never downgraded (refused, naming it); a file that is not a
report or bundle at all is refused rather than replaced. Artifacts whose latency is
gated are copied beside the baseline (``<name>.artifacts/<sha256>.<ext>``) so that
``check`` can re-measure them A/B; the JSON is written last, atomically.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EdgepruneError, InputError
from ..output import sha256_file, write_atomic
from ..report.schema import SCHEMA_VERSION
from .bundle import entries, load_reports_file, parse_entry, reports_by_target
from .models import Report
from .remeasure import store_for, stored_name

#: A baseline keeps at most this many latency samples per figure.
MAX_BASELINE_SAMPLES = 1000


@dataclass
class BaselineWrite:
    """What ``write_baseline`` did: the targets the file holds, and anything to know."""

    path: Path
    targets: list[str]
    artifacts: list[str] = field(default_factory=list)   # files kept in the store
    notes: list[str] = field(default_factory=list)


def write_baseline(report: Any, path: str | os.PathLike, *, report_dir: Path | None = None,
                   report_source: str = "report",
                   max_latency_samples: int = MAX_BASELINE_SAMPLES) -> BaselineWrite:
    """Write ``report`` (parsed JSON: a report or bundle) as the baseline at ``path``.

    A baseline holding only the report's target becomes that report; otherwise the file
    becomes a bundle ``{target: report}`` with the report's targets replaced. Latency
    figures with more than ``max_latency_samples`` samples keep that many evenly spaced
    quantiles (``samples_thinned_from`` records the count). ``report_dir`` is where the
    report's artifact files are (needed to keep them for A/B re-measurement).

    Raises:
        InputError / ConfigError: the report does not validate (as in ``check``); the
            existing file cannot be read as a baseline; an entry would be downgraded.
    """
    path = Path(path)
    new = reports_by_target(report, source=report_source)
    raw_new = {name: _thinned(_raw(report, name), max_latency_samples) for name in new}
    merged, notes = _merge(path, raw_new)
    result = BaselineWrite(path, sorted(merged), notes=notes)
    store = store_for(path)
    if report_dir is None:
        result.notes.append("the report's folder is not known: no artifact kept for A/B "
                            "re-measurement")
    else:
        for rep in new.values():
            result.artifacts += _keep_artifacts(rep, report_dir, store, result.notes)
    payload = next(iter(merged.values())) if len(merged) == 1 else \
        {name: merged[name] for name in sorted(merged)}
    try:
        write_atomic(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write the baseline ({exc.strerror})", where=str(path),
                          fix="choose a writable --baseline path") from None
    _prune_store(store, merged)
    return result


def _raw(report: Any, target: str) -> dict:
    for entry in entries(report, "report"):
        if entry.target == target:
            return entry.data
    raise AssertionError(target)   # reports_by_target found it


def _merge(path: Path, new: dict[str, dict]) -> tuple[dict[str, Any], list[str]]:
    """The entries the file will hold, and what to tell about the ones already there."""
    if not path.exists():
        return dict(new), []
    source = str(path)
    try:
        existing = entries(load_reports_file(path, what="baseline"), source)
    except EdgepruneError as exc:
        raise InputError(f"cannot be read as a baseline, so it is not replaced: {exc.what}",
                         where=source, expected="a report or bundle written by edgeprune",
                         fix="repair the file, or move it away and run --update-baseline "
                             "again") from None
    merged: dict[str, Any] = {}
    notes: list[str] = []
    for entry in existing:
        name = entry.target
        if name is None:
            raise InputError("holds an entry with no target name, which would be lost",
                             where=entry.label, expected="a report with target.name",
                             fix="repair or remove that entry, then run --update-baseline again")
        problem = _problem(entry)
        if name in new:
            version = entry.schema_version
            if isinstance(version, int) and not isinstance(version, bool) \
                    and version > SCHEMA_VERSION:
                raise ConfigError(
                    f"holds target {name!r} from a newer edgeprune (schema_version {version}); "
                    f"writing this report (schema_version {SCHEMA_VERSION}) would downgrade it",
                    where=entry.label, expected=f"schema_version {SCHEMA_VERSION} or older",
                    fix="upgrade edgeprune to the version that wrote the baseline, or remove "
                        "that entry by hand if the downgrade is intended")
            if problem:
                notes.append(f"replaced entry {name!r}, which this edgeprune could not read "
                             f"({problem})")
        else:
            merged[name] = entry.data
            if problem:
                notes.append(f"kept entry {name!r} as it was; this edgeprune cannot read it "
                             f"({problem})")
    merged.update(new)
    return merged, notes


def _problem(entry) -> str:
    try:
        parse_entry(entry)
    except EdgepruneError as exc:
        return exc.what.splitlines()[0]
    return ""


def _thinned(report: dict, max_samples: int) -> dict:
    import numpy as np

    out = copy.deepcopy(report)
    for art in out["artifacts"]:
        for name in ("latency_ms", "host_latency_ms"):
            fig = (art.get("measurements") or {}).get(name)
            samples = fig.get("samples") if isinstance(fig, dict) else None
            if isinstance(samples, list) and len(samples) > max_samples:
                quantiles = (np.arange(max_samples) + 0.5) / max_samples
                kept = np.quantile(np.asarray(samples, dtype=float), quantiles)
                fig["samples"] = [round(float(v), 6) for v in kept]
                fig["samples_thinned_from"] = len(samples)
    return out


def _keep_artifacts(report: Report, report_dir: Path, store: Path, notes: list[str]) -> list[str]:
    """Copy the artifacts whose latency is gated into the store, by sha256."""
    kept = []
    for art in report.artifacts:
        if art.figure("latency_ms") is None or not art.sha256 or not art.file:
            continue
        source = report_dir / art.file
        if not source.is_file() or sha256_file(source) != art.sha256:
            notes.append(f"{report.target.name}/{art.name}: the file the report measured is not "
                         f"next to it, so it is not kept; `check` will judge its latency by the "
                         f"fallback rule")
            continue
        dest = store / stored_name(art)
        if not dest.is_file() or sha256_file(dest) != art.sha256:
            write_atomic(dest, source.read_bytes())
        kept.append(str(dest))
    return kept


def _prune_store(store: Path, merged: dict[str, Any]) -> None:
    """Remove stored artifacts no entry of the baseline refers to any more."""
    if not store.is_dir():
        return
    wanted = set()
    for data in merged.values():
        for art in data.get("artifacts", []) if isinstance(data, dict) else []:
            if isinstance(art, dict) and isinstance(art.get("sha256"), str):
                wanted.add(art["sha256"])
    for path in store.iterdir():
        if path.is_file() and path.name.split(".")[0] not in wanted:
            path.unlink(missing_ok=True)
