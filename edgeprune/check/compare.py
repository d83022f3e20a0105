"""Comparing a report with its baseline, target by target, artifact by artifact, figure by figure."""

from __future__ import annotations

import math
import time
from typing import Any

from ..errors import ConfigError, InputError
from . import latency
from .bundle import Baseline, reports_by_target
from .models import Artifact, Report
from .remeasure import Remeasure
from .result import CheckResult, Growth, Row
from .rules import FigureRule, rules_for


def check_reports(report: Any, baseline: Any, *, overrides: dict | None = None,
                  report_source: str = "report", baseline_source: str = "baseline",
                  remeasure: Remeasure | None = None) -> CheckResult:
    """Compare ``report`` with ``baseline`` (each a report or a bundle, parsed JSON).

    Args:
        overrides: Tolerances fields that replace the profile's, for every target
            (``{"latency_rel": 0.2}``).
        report_source, baseline_source: the file names used in messages.
        remeasure: where the artifact files are and how to time them A/B; without it,
            latency is judged by the fallback rule (see :mod:`edgeprune.check.latency`).

    Raises:
        ConfigError: a schema version this edgeprune cannot read, a target with no
            baseline, a target whose runtime settings changed, an invalid tolerance.
        InputError: a malformed report or baseline entry (named by its own file), an
            artifact of the baseline missing from the report.
    """
    started = time.perf_counter()
    new = reports_by_target(report, source=report_source)
    old = Baseline(baseline, source=baseline_source)
    remeasure = remeasure or Remeasure(None, None, enabled=False)
    rows: list[Row] = []
    growth: list[Growth] = []
    tolerances: dict[str, dict[str, float]] = {}
    for target, rep in new.items():
        base = old.report(target, report_source=report_source)
        _same_runtime(rep, base, target, report_source, baseline_source)
        tol, origin = _tolerances(rep, overrides)
        tolerances[target] = tol
        rows += _compare_target(rep, base, tol, origin, report_source, baseline_source,
                                growth, remeasure)
    budgets = {target: [b.model_dump() for b in rep.budgets] for target, rep in new.items()}
    return CheckResult(rows=rows, budgets=budgets, growth=growth, tolerances=tolerances,
                       latency_method=latency.LATENCY_METHOD,
                       seconds=time.perf_counter() - started)


def _same_runtime(rep: Report, base: Report, target: str, rsrc: str, bsrc: str) -> None:
    changed = [key for key in ("engine", "threads", "delegate")
               if getattr(rep.target, key) != getattr(base.target, key)]
    if changed:
        diffs = ", ".join(f"{k}: {getattr(base.target, k)!r} -> {getattr(rep.target, k)!r}"
                          for k in changed)
        raise ConfigError(
            f"target {target!r} runs differently from its baseline ({diffs}); "
            f"latency and instruction counts are not comparable",
            where=f"{rsrc}: target", expected=f"the runtime settings of {bsrc}",
            fix="if the profile change is intended, refresh the baseline with --update-baseline")


def _tolerances(report: Report, overrides: dict | None) -> tuple[dict[str, float], dict[str, str]]:
    from ..config_io import validate_model
    from ..targets import Tolerances

    fields = list(Tolerances.model_fields)
    profile = report.target.tolerances
    values = (profile or Tolerances()).model_dump()
    origin = dict.fromkeys(fields, "default")
    if profile is not None:
        origin.update(dict.fromkeys(profile.model_fields_set, "profile"))
    if overrides:
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(f"unknown tolerance(s): {', '.join(unknown)}",
                              where="overrides", expected=f"some of: {', '.join(fields)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        values = validate_model(Tolerances, {**values, **given}, source="overrides").model_dump()
        origin.update(dict.fromkeys(given, "override"))
    return values, origin


def _compare_target(rep: Report, base: Report, tol: dict[str, float], origin: dict[str, str],
                    rsrc: str, bsrc: str, growth: list[Growth], remeasure: Remeasure) -> list[Row]:
    target = rep.target.name
    missing = [a.name for a in base.artifacts if rep.artifact(a.name) is None]
    if missing:
        raise InputError(
            f"target {target!r} has no artifact {', '.join(map(repr, missing))}, "
            f"which the baseline has", where=f"{rsrc}: artifacts",
            expected=f"the artifacts of {bsrc}: {', '.join(a.name for a in base.artifacts)}",
            fix="if the recipe dropped it on purpose, refresh the baseline with "
                "--update-baseline; otherwise look for the export step that failed")
    rows: list[Row] = []
    for art in rep.artifacts:
        old_art = base.artifact(art.name)
        if old_art is None:
            rows.append(Row(target, art.name, "(artifact)", "", None, None, None, None, "",
                            "", "new", "not in the baseline; nothing to compare"))
            continue
        names = [*art.figure_names(), *old_art.figure_names()]
        for rule in rules_for(names):
            tol_text = f"{rule.tolerance}={tol[rule.tolerance]:g} ({origin[rule.tolerance]})" \
                if rule.gated else "not gated"
            for fields in _compare_figure(rule, old_art, art, tol[rule.tolerance], rep,
                                          remeasure):
                rows.append(Row(target, art.name, tolerance=tol_text, **fields))
        found = _growth(target, old_art, art)
        if found is not None:
            growth.append(found)
    return rows


def _compare_figure(rule: FigureRule, old_art: Artifact, new_art: Artifact, tol: float,
                    rep: Report, remeasure: Remeasure) -> list[dict]:
    """Fields of the Rows for one figure (none when neither report has it)."""
    old, new = old_art.figure(rule.figure), new_art.figure(rule.figure)
    old_v = old.value if old is not None else None
    new_v = new.value if new is not None else None
    if old_v is None and new_v is None:
        return []
    unit = (new or old).unit
    blank = dict(figure=rule.figure, unit=unit, baseline=old_v, value=new_v, delta=None,
                 delta_rel=None, delta_text="")
    if new_v is None:
        verdict = "missing" if rule.gated else "shown"
        return [blank | dict(verdict=verdict, detail="measured in the baseline, not in the "
                             "report; restore the measurement or refresh the baseline")]
    if old_v is None:
        return [blank | dict(verdict="new" if rule.gated else "shown",
                             detail="not in the baseline")]
    for key in ("unit", "method"):
        if getattr(old, key) != getattr(new, key):
            return [blank | dict(verdict="incomparable" if rule.gated else "shown",
                                 detail=f"{key} was {getattr(old, key)!r}, now "
                                        f"{getattr(new, key)!r}; refresh the baseline if this "
                                        f"change is intended")]
    if rule.kind == "relative":
        return [blank | _relative(old_v, new_v, tol, unit, rule.better)]
    if rule.kind == "points":
        return [blank | _points(old_v, new_v, tol, rule.better)]
    if rule.kind == "classes":
        return _classes(rule, old_v, new_v, tol, unit)
    if rule.kind == "shown":
        return [blank | latency.shown(old, new)]
    return [blank | _latency(old_art, new_art, tol, rep, remeasure)]


def _relative(old: float, new: float, tol: float, unit: str, better: str = "lower") -> dict:
    delta = new - old
    rel = delta / old if old else (0.0 if delta == 0 else math.inf)
    worse = delta if better == "lower" else -delta
    if delta == 0:
        verdict = "unchanged"
    elif worse > tol * abs(old):
        verdict = "regressed"
    elif -worse > tol * abs(old):
        verdict = "improved"
    else:
        verdict = "within"
    shown = f"{delta:+,}" if isinstance(delta, int) else f"{delta:+,.6g}"
    return dict(delta=delta, delta_rel=rel, verdict=verdict,
                delta_text=f"{shown} {unit} ({rel:+.2%})".replace("  ", " "))


def _points(old: float, new: float, tol: float, better: str = "higher") -> dict:
    delta = (new - old) * 100.0
    worse = -delta if better == "higher" else delta
    eps = 1e-9
    if delta == 0:
        verdict = "unchanged"
    elif worse > tol + eps:
        verdict = "regressed"
    elif -worse > tol + eps:
        verdict = "improved"
    else:
        verdict = "within"
    return dict(delta=delta, delta_rel=(new - old) / old if old else None, verdict=verdict,
                delta_text=f"{delta:+.2f} pt")


def _classes(rule: FigureRule, old: dict[str, int], new: dict[str, int], tol: float,
             unit: str) -> list[dict]:
    """One row per instruction class: its growth judged against the baseline's total."""
    total = sum(old.values()) or 1
    rows = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, 0), new.get(name, 0)
        delta = after - before
        share = delta / total
        if delta == 0:
            verdict = "unchanged"
        elif share > tol:
            verdict = "regressed"
        elif -share > tol:
            verdict = "improved"
        else:
            verdict = "within"
        rows.append(dict(figure=f"{rule.figure}.{name}", unit=unit, baseline=before,
                         value=after, delta=delta, delta_rel=share, verdict=verdict,
                         delta_text=f"{delta:+,} ({share:+.2%} of the total)",
                         detail=f"growth of the class as a fraction of the baseline's "
                                f"{total:,} instructions"))
    return rows


def _latency(old_art: Artifact, new_art: Artifact, tol: float, rep: Report,
             remeasure: Remeasure) -> dict:
    old, new = old_art.figure("latency_ms"), new_art.figure("latency_ms")
    new_path, old_path, how = remeasure.files(new_art, old_art)
    if new_path is not None:
        ab = remeasure.run(rep.target, new_art.format, old_path, new_path)
        return latency.decide_ab({**ab, "found": how}, tol)
    if old.control is not None and new.control is not None:
        return latency.decide_control(old, new, tol, f"no A/B: {how}")
    return latency.not_compared(old, new, f"no A/B: {how}")


def _growth(target: str, old: Artifact, new: Artifact) -> Growth | None:
    tensors: list = []
    ops: list = []
    old_b, new_b = old.measurements.breakdown, new.measurements.breakdown
    if old_b is not None and new_b is not None:
        tensors = _grown(old_b.tensors, new_b.tensors, unscoped=True)
        ops = _grown(old_b.ops, new_b.ops)
    costs = _op_costs(old.figure("ops"), new.figure("ops"))
    if not tensors and not ops and not costs:
        return None
    return Growth(target, new.name, tensors, ops, costs)


def _grown(old: dict[str, int], new: dict[str, int], unscoped: bool = False
           ) -> list[tuple[str, int, int]]:
    """Entries of ``new`` larger than in ``old``. With ``unscoped``, a name missing from
    ``old`` is matched without its model scope (``sequential_1/conv/Conv2D`` with
    ``sequential/conv/Conv2D``: Keras numbers models built in one process) when that
    finds exactly one tensor."""
    by_tail: dict[str, list[int]] = {}
    if unscoped:
        for name, size in old.items():
            by_tail.setdefault(_unscoped(name), []).append(size)
    grown = []
    for name, size in new.items():
        before = old.get(name)
        if before is None:
            alike = by_tail.get(_unscoped(name), []) if unscoped else []
            before = alike[0] if len(alike) == 1 else 0
        if size > before:
            grown.append((name, before, size))
    return sorted(grown, key=lambda t: (t[1] - t[2], t[0]))


def _unscoped(name: str) -> str:
    return ";".join(part.split("/", 1)[-1] for part in name.split(";"))


def _op_costs(old: Any, new: Any) -> list[tuple[str, float, float, str]]:
    """Per-op rows whose cost grew, matched by op and name (else by op and index)."""
    if old is None or new is None:
        return []
    for key, unit in (("instructions", "instructions"), ("ms", "ms"), ("estimate_ms", "ms est.")):
        before = _op_table(old.rows, key)
        after = _op_table(new.rows, key)
        if before and after:
            grown = [(label, before.get(label, 0), cost, unit) for label, cost in after.items()
                     if cost > before.get(label, 0)]
            return sorted(grown, key=lambda t: (t[1] - t[2], t[0]))
    return []


def _op_table(rows: list, key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        cost = getattr(row, key)
        if cost is not None:
            label = f"{row.op} {row.name}" if row.name else f"{row.op} #{row.index}"
            out[label] = out.get(label, 0) + cost
    return out
