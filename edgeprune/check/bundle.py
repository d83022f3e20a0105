"""Report and baseline files: one report, or a bundle of one report per target.

A bundle is a JSON object mapping each target name to its report
(``{"host": {...}, "rpi4": {...}}``, what :func:`~.baseline.write_baseline` writes) or
a JSON list of reports. A target appears at most once. Every entry of a *report*
file is validated; of a *baseline*, only the entries compared are, so that an entry
this edgeprune cannot read (another target's, from a newer edgeprune) does not stop
the check of the others.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .models import Report, parse_report


def load_reports_file(path: str | os.PathLike, *, what: str = "report") -> Any:
    """Read a report or bundle file; a missing file or bad JSON is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        fix = ("create it with `edgeprune check REPORT --baseline PATH --update-baseline`"
               if what == "baseline" else "run `edgeprune export` first, or check the path")
        raise InputError(f"no {what} file here", where=str(path), fix=fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                         where=str(path), expected=f"a {what} written by edgeprune",
                         fix="regenerate the file; do not edit it by hand") from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", where=str(path),
                         expected=f"a {what} (report.json) written by edgeprune") from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", where=str(path),
                         expected=f"a {what} written by edgeprune",
                         fix="regenerate the file; do not edit it by hand") from None


@dataclass(frozen=True)
class Entry:
    """One report of a file, unvalidated: its bundle key (if any), its label for
    messages (``baselines/all.json['rpi4']``) and the target it names, if it names one."""

    key: str | None
    label: str
    data: Any

    @property
    def target(self) -> str | None:
        if self.key is not None:
            return self.key
        target = self.data.get("target") if isinstance(self.data, dict) else None
        name = target.get("name") if isinstance(target, dict) else None
        return name if isinstance(name, str) and name else None

    @property
    def schema_version(self) -> Any:
        return self.data.get("schema_version") if isinstance(self.data, dict) else None


def is_single_report(data: Any) -> bool:
    return isinstance(data, dict) and ("schema_version" in data or "artifacts" in data)


def entries(data: Any, source: str) -> list[Entry]:
    """The reports of a file, in order, with their labels."""
    if is_single_report(data):
        return [Entry(None, source, data)]
    if isinstance(data, dict):
        items = [Entry(str(k), f"{source}[{k!r}]", v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [Entry(None, f"{source}[{i}]", v) for i, v in enumerate(data)]
    else:
        raise InputError(f"holds a JSON {type(data).__name__}", where=source,
                         expected="a report (object with schema_version), a list of reports, "
                                  "or an object mapping target names to reports")
    if not items:
        raise InputError("holds no report", where=source,
                         expected="at least one report", fix="regenerate the file")
    return items


def parse_entry(entry: Entry) -> Report:
    """Validate one entry; its key must be its report's target name."""
    report = parse_report(entry.data, entry.label)
    if entry.key is not None and entry.key != report.target.name:
        raise InputError(f"the entry {entry.key!r} holds a report for target "
                         f"{report.target.name!r}", where=entry.label,
                         expected="each key equal to its report's target.name",
                         fix="regenerate the bundle with --update-baseline")
    return report


def reports_by_target(data: Any, *, source: str) -> dict[str, Report]:
    """Every report of a file, validated, as ``{target name: report}``."""
    out: dict[str, Report] = {}
    for entry in entries(data, source):
        report = parse_entry(entry)
        if report.target.name in out:
            raise InputError(f"target {report.target.name!r} appears twice", where=source,
                             fix="keep one report per target in a bundle")
        out[report.target.name] = report
    return out


class Baseline:
    """A baseline file's entries by target; each is validated when it is compared."""

    def __init__(self, data: Any, *, source: str):
        self.source = source
        self.by_target: dict[str, Entry] = {}
        self._unnamed: list[Entry] = []   # unreadable and nameless: shown if nothing matches
        for entry in entries(data, source):
            name = entry.target
            if name is None:
                self._unnamed.append(entry)
            elif name in self.by_target:
                raise InputError(f"target {name!r} appears twice", where=source,
                                 fix="keep one report per target in a bundle")
            else:
                self.by_target[name] = entry

    def report(self, target: str, *, report_source: str) -> Report:
        entry = self.by_target.get(target)
        if entry is not None:
            return parse_entry(entry)
        if self._unnamed:     # e.g. a damaged single report: say what is wrong with it
            parse_entry(self._unnamed[0])
        raise ConfigError(
            f"has no baseline for target {target!r} (it holds: "
            f"{', '.join(sorted(self.by_target)) or 'no readable entry'})",
            where=self.source, expected=f"a report or bundle entry for {target!r}",
            fix=f"check the --baseline path; for a new target, add it with `edgeprune check "
                f"{report_source} --baseline {self.source} --update-baseline`")
