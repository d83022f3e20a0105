"""Regression check: compare a new ``report.json`` with a committed baseline.

``edgeprune check`` is the CI gate. It matches the two reports target by target and
artifact by artifact (on the artifact's ``name``) and compares each figure with the
tolerance the report's target profile allows (``report["target"]["tolerances"]``,
falling back to the :class:`~edgeprune.targets.Tolerances` defaults; a caller can
override any of them).

Files
-----
A report file and a baseline file each hold either

* one report, exactly as ``edgeprune export`` writes it (a JSON object with
  ``schema_version``), or
* a *bundle* of reports, so that one committed file can cover several targets:
  a JSON object mapping each target name to its report
  (``{"host": {...report...}, "rpi4": {...}}``; :func:`write_baseline` writes this
  shape) or a JSON list of reports. A target appears at most once in a bundle.

Every target in the report must have a baseline; the baseline may hold more targets
than the report (one ``baselines.json`` for a CI matrix that checks one target per job).

Figures and how they are compared
---------------------------------
================================  ===============  ===============================
figure                            tolerance        a regression when
================================  ===============  ===============================
size_bytes, gzip_bytes,           size_bytes_rel   new > baseline x (1 + tol)
flash_bytes
arena_bytes                       arena_bytes_rel  new > baseline x (1 + tol)
instructions_per_invoke           instructions_rel new > baseline x (1 + tol)
accuracy                          accuracy_points  drop > tol percentage points
f1_macro                          f1_points        drop > tol percentage points
latency_ms                        latency_rel      see below
================================  ===============  ===============================

A figure that moved beyond its tolerance in the good direction is an *improvement*
(reported, never a failure). Latency is measured on machines that other jobs share,
so single numbers are not compared: a latency regression needs **both** a one-sided
Mann-Whitney U test on the raw samples (the new samples are stochastically larger,
p < :data:`LATENCY_ALPHA`) **and** a ratio of medians above ``1 + latency_rel``. The
first rules out noise, the second ignores real but small shifts. Improvements are
judged the same way in the other direction (ratio below ``1 - latency_rel``). When a
side has fewer than :data:`MIN_LATENCY_SAMPLES` samples only the medians are compared,
and the row says so.

A figure the baseline has and the report lacks is ``missing`` (a failure: the gate
would silently stop checking it); one measured a different way (``method`` or ``unit``
differ) is ``incomparable`` (a failure). A figure only the report has is ``new``.
A budget in the report that is not ``pass`` (``fail`` or ``not_measured``) also fails
the check, so that one command gates both.

Where both artifacts carry ``measurements.breakdown``
(``{"tensors": {name: bytes}, "ops": {op_type: count}}``, see
:mod:`edgeprune.measure.breakdown`), the result names the tensors that grew and the
ops whose count grew.

Example::

    from edgeprune.check import check_reports, load_reports_file
    result = check_reports(json.load(open("dist/host/report.json")),
                           load_reports_file("baselines/host.json"),
                           overrides={"latency_rel": 0.2})
    if not result.passed:
        print([row.figure for row in result.regressions])
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, InputError
from .report.schema import SCHEMA_VERSION

#: Significance level of the one-sided Mann-Whitney U test on latency samples.
LATENCY_ALPHA = 0.01
#: Fewer samples than this on either side: compare medians only.
MIN_LATENCY_SAMPLES = 8
#: A baseline keeps at most this many latency samples per figure (see write_baseline).
MAX_BASELINE_SAMPLES = 1000

Kind = Literal["relative", "points", "latency"]
Verdict = Literal["unchanged", "within", "improved", "regressed", "new", "missing",
                  "incomparable"]
FAILING: frozenset[str] = frozenset({"regressed", "missing", "incomparable"})


@dataclass(frozen=True)
class FigureRule:
    """How one figure is compared: its kind and the Tolerances field that bounds it."""

    figure: str
    kind: Kind
    tolerance: str


#: The figures compared, in display order. Adding one is one line here.
RULES: tuple[FigureRule, ...] = (
    FigureRule("size_bytes", "relative", "size_bytes_rel"),
    FigureRule("gzip_bytes", "relative", "size_bytes_rel"),
    FigureRule("flash_bytes", "relative", "size_bytes_rel"),
    FigureRule("arena_bytes", "relative", "arena_bytes_rel"),
    FigureRule("instructions_per_invoke", "relative", "instructions_rel"),
    FigureRule("accuracy", "points", "accuracy_points"),
    FigureRule("f1_macro", "points", "f1_points"),
    FigureRule("latency_ms", "latency", "latency_rel"),
)

_POINTS = frozenset(rule.figure for rule in RULES if rule.kind == "points")

LATENCY_METHOD = (f"latency_ms: a regression needs a one-sided Mann-Whitney U test on the raw "
                  f"samples (p < {LATENCY_ALPHA}) AND a median ratio above 1 + latency_rel; "
                  f"an improvement, the same in the other direction")


@dataclass(frozen=True)
class Row:
    """One figure of one artifact, compared."""

    target: str
    artifact: str
    figure: str
    unit: str
    baseline: float | None
    value: float | None
    delta: float | None            # new - baseline, in ``unit`` (percentage points for points)
    delta_rel: float | None        # (new - baseline) / baseline, or the median ratio - 1
    delta_text: str
    tolerance: str                 # e.g. "size_bytes_rel=0 (profile)"
    verdict: Verdict
    detail: str = ""               # how it was decided (p-value, ratio) or what to do

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    def shown(self, value: float | None) -> str:
        """``value`` for a table: fractions in %, integers with separators, then the unit."""
        if value is None:
            return "-"
        if self.figure in _POINTS:
            return f"{value * 100:.2f}%"
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
        return f"{text} {self.unit}".rstrip()


@dataclass(frozen=True)
class Growth:
    """What grew inside an artifact, from the two ``measurements.breakdown`` tables."""

    target: str
    artifact: str
    tensors: list[tuple[str, int, int]]   # (name, baseline bytes, new bytes), largest growth first
    ops: list[tuple[str, int, int]]       # (op type, baseline count, new count)

    def lines(self, limit: int = 5) -> list[str]:
        out = [f"tensor {name}: {old} -> {new} B (+{new - old})"
               for name, old, new in self.tensors[:limit]]
        if len(self.tensors) > limit:
            out.append(f"... and {len(self.tensors) - limit} more tensors")
        out += [f"op {op}: {old} -> {new} (+{new - old})" for op, old, new in self.ops]
        return out


@dataclass
class CheckResult:
    """Every comparison, the report's budgets and what grew; ``passed`` is the gate."""

    rows: list[Row]
    budgets: dict[str, list[dict]]                  # target -> the report's budgets
    growth: list[Growth] = field(default_factory=list)
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> in force
    latency_method: str = LATENCY_METHOD

    @property
    def targets(self) -> list[str]:
        return list(self.budgets)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.failed]

    @property
    def improvements(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == "improved"]

    @property
    def failed_budgets(self) -> list[tuple[str, dict]]:
        return [(target, b) for target, budgets in self.budgets.items()
                for b in budgets if b.get("verdict") != "pass"]

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.failed_budgets

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def growth_for(self, target: str, artifact: str) -> Growth | None:
        for g in self.growth:
            if (g.target, g.artifact) == (target, artifact):
                return g
        return None

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "targets": self.targets,
            "latency_method": self.latency_method,
            "tolerances": self.tolerances,
            "rows": [asdict(row) | {"failed": row.failed} for row in self.rows],
            "budgets": self.budgets,
            "growth": [asdict(g) for g in self.growth],
            "counts": {"regressions": len(self.regressions),
                       "improvements": len(self.improvements),
                       "failed_budgets": len(self.failed_budgets)},
        }


# ---------------------------------------------------------------------------- files


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


def reports_by_target(data: Any, *, source: str) -> dict[str, dict]:
    """A report or a bundle as ``{target name: report}``; checks each schema version."""
    if isinstance(data, dict) and ("schema_version" in data or "artifacts" in data):
        items = [(None, data)]
    elif isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = [(None, item) for item in data]
    else:
        raise InputError(f"holds a JSON {type(data).__name__}", where=source,
                         expected="a report (object with schema_version), a list of reports, "
                                  "or an object mapping target names to reports")
    if not items:
        raise InputError("holds no report", where=source,
                         expected="at least one report", fix="regenerate the file")
    out: dict[str, dict] = {}
    for index, (key, report) in enumerate(items):
        if key is not None:
            label = f"{source}[{key!r}]"
        else:
            label = source if len(items) == 1 and report is data else f"{source}[{index}]"
        name = _report_target(report, label)
        if key is not None and key != name:
            raise InputError(f"the entry {key!r} holds a report for target {name!r}",
                             where=label, expected="each key equal to its report's target.name",
                             fix="regenerate the bundle with --update-baseline")
        if name in out:
            raise InputError(f"target {name!r} appears twice", where=source,
                             fix="keep one report per target in a bundle")
        out[name] = report
    return out


def _report_target(report: Any, label: str) -> str:
    if not isinstance(report, dict) or "schema_version" not in report:
        raise InputError("is not a report (no schema_version)", where=label,
                         expected="a report.json written by `edgeprune export`")
    version = report["schema_version"]
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise ConfigError(
            f"schema_version is {version!r}; this edgeprune reads version {SCHEMA_VERSION}",
            where=f"{label}: schema_version", expected=str(SCHEMA_VERSION),
            fix=("upgrade edgeprune to the version that wrote it" if newer else
                 "re-export with this edgeprune, then refresh the baseline with "
                 "`edgeprune check REPORT --baseline FILE --update-baseline`"))
    target = report.get("target")
    name = target.get("name") if isinstance(target, dict) else None
    if not isinstance(name, str) or not name:
        raise InputError("has no target.name", where=f"{label}: target.name",
                         expected="the target profile's name, as `edgeprune export` writes it")
    if not isinstance(report.get("artifacts"), list):
        raise InputError("has no artifacts list", where=f"{label}: artifacts",
                         expected="a list of artifacts, as `edgeprune export` writes it")
    return name


def write_baseline(report: Any, path: str | os.PathLike, *,
                   max_latency_samples: int = MAX_BASELINE_SAMPLES) -> list[str]:
    """Write ``report`` (a report or bundle) as the baseline at ``path``, atomically.

    A baseline that holds one target and receives the same target is replaced by the
    single report. Otherwise the file becomes a bundle ``{target: report}``: the
    report's targets replace theirs, the others already there are kept. A file this
    edgeprune cannot read (another schema version, not JSON) is replaced whole. Returns
    the names of the targets the file now holds.

    Latency figures with more than ``max_latency_samples`` samples keep that many
    evenly spaced quantiles of them (``samples_thinned_from`` records the count), so
    that a committed baseline stays small: a fast model gives tens of thousands of
    samples. The median is kept; the U test against quantiles is, if anything,
    conservative.
    """
    path = Path(path)
    new = {name: _thinned(rep, max_latency_samples)
           for name, rep in reports_by_target(report, source="report").items()}
    merged = dict(new)
    if path.exists():
        try:
            old = reports_by_target(load_reports_file(path, what="baseline"), source=str(path))
        except (InputError, ConfigError):
            old = {}   # another schema version, or not JSON: the new baseline replaces it
        merged = {**old, **new}
    payload: Any
    if len(merged) == 1:
        payload = next(iter(merged.values()))
    else:
        payload = {name: merged[name] for name in sorted(merged)}
    _atomic_write(path, json.dumps(payload, indent=2) + "\n")
    return sorted(merged)


def _thinned(report: dict, max_samples: int) -> dict:
    import numpy as np

    out = copy.deepcopy(report)
    for art in out["artifacts"]:
        fig = (art.get("measurements") or {}).get("latency_ms")
        samples = fig.get("samples") if isinstance(fig, dict) else None
        if isinstance(samples, list) and len(samples) > max_samples:
            quantiles = (np.arange(max_samples) + 0.5) / max_samples
            kept = np.quantile(np.asarray(samples, dtype=float), quantiles)
            fig["samples"] = [round(float(v), 6) for v in kept]
            fig["samples_thinned_from"] = len(samples)
    return out


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- checking


def check_reports(report: Any, baseline: Any, *, overrides: dict | None = None,
                  report_source: str = "report", baseline_source: str = "baseline"
                  ) -> CheckResult:
    """Compare ``report`` with ``baseline`` (each a report or a bundle, parsed JSON).

    Args:
        overrides: Tolerances fields that replace the profile's, for every target
            (``{"latency_rel": 0.2}``).
        report_source, baseline_source: the file names used in error messages.

    Raises:
        ConfigError: a schema version this edgeprune cannot read, a target with no
            baseline, a target whose runtime settings changed, an invalid tolerance.
        InputError: a malformed report, an artifact of the baseline missing from the report.
    """
    new = reports_by_target(report, source=report_source)
    old = reports_by_target(baseline, source=baseline_source)
    rows: list[Row] = []
    growth: list[Growth] = []
    tolerances: dict[str, dict[str, float]] = {}
    for target, rep in new.items():
        if target not in old:
            raise ConfigError(
                f"has no baseline for target {target!r} (it holds: {', '.join(sorted(old))})",
                where=baseline_source, expected=f"a report or bundle entry for {target!r}",
                fix=f"check the --baseline path; for a new target, add it with "
                    f"`edgeprune check {report_source} --baseline {baseline_source} "
                    f"--update-baseline`")
        base = old[target]
        _same_runtime(rep, base, target, report_source, baseline_source)
        tol, origin = _tolerances(rep, overrides, f"{report_source}: target.tolerances")
        tolerances[target] = tol
        rows += _compare_target(target, rep, base, tol, origin, report_source, baseline_source,
                                growth)
    budgets = {target: _budgets(rep, report_source) for target, rep in new.items()}
    return CheckResult(rows=rows, budgets=budgets, growth=growth, tolerances=tolerances)


def _same_runtime(rep: dict, base: dict, target: str, rsrc: str, bsrc: str) -> None:
    changed = [key for key in ("engine", "threads", "delegate")
               if rep["target"].get(key) != base["target"].get(key)]
    if changed:
        diffs = ", ".join(f"{k}: {base['target'].get(k)!r} -> {rep['target'].get(k)!r}"
                          for k in changed)
        raise ConfigError(
            f"target {target!r} runs differently from its baseline ({diffs}); "
            f"latency and instruction counts are not comparable",
            where=f"{rsrc}: target", expected=f"the runtime settings of {bsrc}",
            fix="if the profile change is intended, refresh the baseline with --update-baseline")


def _tolerances(report: dict, overrides: dict | None, where: str
                ) -> tuple[dict[str, float], dict[str, str]]:
    from .targets import Tolerances   # pydantic only; no TensorFlow

    fields = list(Tolerances.model_fields)
    values = Tolerances().model_dump()
    origin = dict.fromkeys(fields, "default")
    from_profile = report["target"].get("tolerances")
    if from_profile is not None:
        values = _validated(Tolerances, from_profile, where)
        origin.update(dict.fromkeys(from_profile, "profile"))
    if overrides:
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(f"unknown tolerance(s): {', '.join(unknown)}",
                              where="overrides", expected=f"some of: {', '.join(fields)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        values = _validated(Tolerances, {**values, **given}, "overrides")
        origin.update(dict.fromkeys(given, "override"))
    return values, origin


def _validated(model: Any, data: Any, where: str) -> dict[str, float]:
    from .config_io import validate_model

    if not isinstance(data, dict):
        raise ConfigError(f"is a {type(data).__name__}", where=where,
                          expected="an object of Tolerances fields")
    return validate_model(model, data, source=where).model_dump()


def _budgets(report: dict, source: str) -> list[dict]:
    budgets = report.get("budgets", [])
    if not isinstance(budgets, list) or not all(isinstance(b, dict) for b in budgets):
        raise InputError("budgets is not a list of objects", where=f"{source}: budgets",
                         expected="the budgets list written by `edgeprune export`")
    return budgets


def _artifacts(report: dict, source: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, art in enumerate(report["artifacts"]):
        if not isinstance(art, dict) or not isinstance(art.get("name"), str):
            raise InputError("an artifact has no name", where=f"{source}: artifacts[{i}]",
                             expected="an artifact record written by `edgeprune export`")
        out[art["name"]] = art
    return out


def _compare_target(target: str, rep: dict, base: dict, tol: dict[str, float],
                    origin: dict[str, str], rsrc: str, bsrc: str,
                    growth: list[Growth]) -> list[Row]:
    new_arts = _artifacts(rep, rsrc)
    old_arts = _artifacts(base, bsrc)
    missing = [name for name in old_arts if name not in new_arts]
    if missing:
        raise InputError(
            f"target {target!r} has no artifact {', '.join(map(repr, missing))}, "
            f"which the baseline has", where=f"{rsrc}: artifacts",
            expected=f"the artifacts of {bsrc}: {', '.join(old_arts)}",
            fix="if the recipe dropped it on purpose, refresh the baseline with "
                "--update-baseline; otherwise look for the export step that failed")
    rows: list[Row] = []
    for name, art in new_arts.items():
        if name not in old_arts:
            rows.append(Row(target, name, "(artifact)", "", None, None, None, None, "",
                            "", "new", "not in the baseline; nothing to compare"))
            continue
        where = f"{rsrc}: target {target!r}, artifact {name!r}"
        new_m = _measurements(art, where)
        old_m = _measurements(old_arts[name], f"{bsrc}: target {target!r}, artifact {name!r}")
        for rule in RULES:
            tol_text = f"{rule.tolerance}={tol[rule.tolerance]:g} ({origin[rule.tolerance]})"
            row = _compare_figure(rule, old_m.get(rule.figure), new_m.get(rule.figure),
                                  tol[rule.tolerance], where)
            if row is not None:
                rows.append(Row(target, name, rule.figure, tolerance=tol_text, **row))
        found = _growth(target, name, old_m.get("breakdown"), new_m.get("breakdown"), where)
        if found is not None:
            growth.append(found)
    return rows


def _measurements(art: dict, where: str) -> dict:
    m = art.get("measurements", {})
    if not isinstance(m, dict):
        raise InputError("measurements is not an object", where=f"{where}: measurements")
    return m


def _compare_figure(rule: FigureRule, old: Any, new: Any, tol: float, where: str
                    ) -> dict | None:
    """The fields of a Row for one figure, or None when neither report has it."""
    old_v = _value(old, f"{where}, baseline {rule.figure}")
    new_v = _value(new, f"{where}, {rule.figure}")
    if old_v is None and new_v is None:
        return None
    unit = (new or old).get("unit", "") or ""
    blank = dict(unit=unit, baseline=old_v, value=new_v, delta=None, delta_rel=None,
                 delta_text="")
    if new_v is None:
        return blank | dict(verdict="missing", detail="measured in the baseline, not in the "
                            "report; restore the measurement or refresh the baseline")
    if old_v is None:
        return blank | dict(verdict="new", detail="not in the baseline")
    for key in ("unit", "method"):
        if old.get(key) != new.get(key):
            return blank | dict(verdict="incomparable",
                                detail=f"{key} was {old.get(key)!r}, now {new.get(key)!r}; "
                                       f"refresh the baseline if this change is intended")
    if rule.kind == "relative":
        return blank | _relative(old_v, new_v, tol, unit)
    if rule.kind == "points":
        return blank | _points(old_v, new_v, tol)
    return blank | _latency(old, new, tol, where)


def _value(fig: Any, where: str) -> float | None:
    if fig is None:
        return None
    if not isinstance(fig, dict):
        raise InputError("is not a figure object", where=where,
                         expected='{"value": ..., "unit": ..., "method": ..., "by": ...}')
    value = fig.get("value")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InputError(f"value {value!r} is not a number", where=f"{where}.value")
    return value


def _relative(old: float, new: float, tol: float, unit: str) -> dict:
    delta = new - old
    rel = delta / old if old else (0.0 if delta == 0 else math.inf)
    if delta == 0:
        verdict = "unchanged"
    elif delta > tol * abs(old):
        verdict = "regressed"
    elif -delta > tol * abs(old):
        verdict = "improved"
    else:
        verdict = "within"
    shown = f"{delta:+,}" if isinstance(delta, int) else f"{delta:+,.6g}"
    return dict(delta=delta, delta_rel=rel, verdict=verdict,
                delta_text=f"{shown} {unit} ({rel:+.2%})".replace("  ", " "))


def _points(old: float, new: float, tol: float) -> dict:
    delta = (new - old) * 100.0
    eps = 1e-9
    if delta == 0:
        verdict = "unchanged"
    elif -delta > tol + eps:
        verdict = "regressed"
    elif delta > tol + eps:
        verdict = "improved"
    else:
        verdict = "within"
    return dict(delta=delta, delta_rel=(new - old) / old if old else None, verdict=verdict,
                delta_text=f"{delta:+.2f} pt")


def _latency(old: dict, new: dict, tol: float, where: str) -> dict:
    import numpy as np

    a = _samples(old, f"{where}, baseline latency_ms.samples")
    b = _samples(new, f"{where}, latency_ms.samples")
    old_med = float(np.median(a)) if a is not None else float(old["value"])
    new_med = float(np.median(b)) if b is not None else float(new["value"])
    ratio = new_med / old_med if old_med > 0 else math.inf
    slower, faster = ratio > 1 + tol, ratio < 1 - tol
    if a is None or b is None or min(len(a), len(b)) < MIN_LATENCY_SAMPLES:
        detail = (f"median ratio {ratio:.3f} only: fewer than {MIN_LATENCY_SAMPLES} samples "
                  f"on a side, no distribution test")
        p_slow = p_fast = 0.0
    else:
        p_slow, p_fast = mann_whitney_u(b, a)
        p = p_slow if ratio >= 1 else p_fast
        detail = (f"Mann-Whitney U one-sided p={p:.2g} (alpha {LATENCY_ALPHA}), "
                  f"median ratio {ratio:.3f}, n={len(a)}/{len(b)}")
    if slower and p_slow < LATENCY_ALPHA:
        verdict = "regressed"
    elif faster and p_fast < LATENCY_ALPHA:
        verdict = "improved"
    else:
        verdict = "unchanged" if ratio == 1 else "within"
    return dict(baseline=old_med, value=new_med, delta=new_med - old_med, delta_rel=ratio - 1,
                verdict=verdict, detail=detail,
                delta_text=f"{new_med - old_med:+.4g} ms ({ratio - 1:+.1%} median)")


def mann_whitney_u(x, y) -> tuple[float, float]:
    """One-sided Mann-Whitney U p-values: (x stochastically greater than y, x less).

    The normal approximation with tie and continuity corrections, the same figures as
    ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")`` without importing
    scipy.stats (seconds on a busy machine); exact enough from a few samples a side.
    """
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    nx, ny = len(x), len(y)
    n = nx + ny
    values, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True,
                                        return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]          # average ranks of ties
    u_x = float(ranks[:nx].sum()) - nx * (nx + 1) / 2.0
    ties = float((counts.astype(float) ** 3 - counts).sum())
    sigma = math.sqrt(nx * ny / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0.0:           # every sample equal: no evidence either way
        return 1.0, 1.0
    mu = nx * ny / 2.0

    def p_above(u: float) -> float:
        return 0.5 * math.erfc((u - mu - 0.5) / sigma / math.sqrt(2.0))

    return p_above(u_x), p_above(nx * ny - u_x)


def _samples(fig: dict, where: str):
    import numpy as np

    samples = fig.get("samples")
    if samples is None:
        return None
    try:
        arr = np.asarray(samples, dtype=float)
    except (TypeError, ValueError):
        raise InputError("samples are not all numbers", where=where) from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise InputError("samples must be a flat list of finite numbers", where=where)
    return arr


def _growth(target: str, artifact: str, old: Any, new: Any, where: str) -> Growth | None:
    if old is None or new is None:
        return None
    old_t, old_o = _breakdown(old, f"{where}, baseline measurements.breakdown")
    new_t, new_o = _breakdown(new, f"{where}, measurements.breakdown")
    tensors = sorted(((n, old_t.get(n, 0), v) for n, v in new_t.items() if v > old_t.get(n, 0)),
                     key=lambda t: (t[1] - t[2], t[0]))
    ops = sorted(((n, old_o.get(n, 0), v) for n, v in new_o.items() if v > old_o.get(n, 0)),
                 key=lambda t: (t[1] - t[2], t[0]))
    if not tensors and not ops:
        return None
    return Growth(target, artifact, tensors, ops)


def _breakdown(data: Any, where: str) -> tuple[dict[str, int], dict[str, int]]:
    tables = []
    for key in ("tensors", "ops"):
        table = data.get(key, {}) if isinstance(data, dict) else None
        if not isinstance(table, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in table.values()):
            raise InputError(f"{key} is not a mapping of names to integers", where=f"{where}.{key}",
                             expected='{"tensors": {name: bytes}, "ops": {op_type: count}}')
        tables.append(table)
    return tables[0], tables[1]
