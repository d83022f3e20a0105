"""Quality budgets: how much a metric may worsen from the baseline to the deployed artifact.

``max_accuracy_drop`` judges the accuracy of every classification output;
``max_metric_drop`` judges ``budgets.metric`` (default: the task's primary metric:
accuracy for a classifier, mse for a regression, the user's ``--metric``). A drop is
always "how much worse", whichever way the metric improves: baseline minus deployed
for accuracy, deployed minus baseline for an error.

    >>> metric_drop(baseline.measurements, deployed.measurements, "mse")
    (0.0042, "lower")
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from ..report.schema import BudgetVerdict
from . import Direction, Task, direction_of


def _value(measurements: Mapping[str, Any], metric: str) -> float | None:
    entry = measurements.get(metric)
    if isinstance(entry, Mapping):
        entry = entry.get("value")
    return float(entry) if isinstance(entry, (int, float)) else None


def metric_drop(baseline: Mapping[str, Any], deployed: Mapping[str, Any], metric: str,
                direction: Direction | None = None) -> tuple[float | None, Direction]:
    """How much ``metric`` worsened from ``baseline`` to ``deployed`` (report measurements:
    figures or plain numbers), and which way the metric improves. Positive is worse;
    None when either side lacks the figure."""
    direction = direction or direction_of(metric)
    base, new = _value(baseline, metric), _value(deployed, metric)
    if base is None or new is None:
        return None, direction
    drop = base - new if direction == "higher" else new - base
    return round(drop, 9), direction


def relative_drop(drop: float, base: float) -> float:
    """``drop`` as a fraction of the (non-zero) baseline's value."""
    return round(drop / abs(base), 9) if base else 0.0


def check_budget_metric(budgets, task: Task, where: str) -> None:
    """Fail before any work when ``budgets.metric`` names no metric of this task."""
    metric = getattr(budgets, "metric", None)
    if metric is None:
        return
    known = {task.metric_name(o, m) for o in task.outputs
             for m in _metrics_of(o.kind)} | ({task.custom.name} if task.custom else set())
    if metric not in known:
        raise ConfigError(f"budgets.metric = {metric!r} is not a metric of this model",
                          where=f"{where}: budgets.metric", expected=f"one of {', '.join(sorted(known))}")


def _metrics_of(kind: str) -> tuple[str, ...]:
    if kind == "classification":
        return ("accuracy", "precision_macro", "recall_macro", "f1_macro", "agreement")
    return ("mse", "mae", "max_abs_error", "mae_vs_baseline")


def quality_verdicts(budgets, task: Task, baseline, deploy) -> list[BudgetVerdict]:
    """One verdict per quality budget; ``baseline`` None (an artifact validated without a
    reference model) makes them ``not_measured``."""
    out = []
    checks: list[tuple[str, float, str]] = []
    if budgets.max_accuracy_drop is not None:
        checks += [("max_accuracy_drop", budgets.max_accuracy_drop, task.metric_name(o, "accuracy"))
                   for o in task.outputs if o.kind == "classification"]
    if getattr(budgets, "max_metric_drop", None) is not None:
        checks.append(("max_metric_drop", budgets.max_metric_drop, budgets.metric or task.primary))
    if getattr(budgets, "max_metric_rel_drop", None) is not None:
        checks.append(("max_metric_rel_drop", budgets.max_metric_rel_drop, budgets.metric or task.primary))
    for name, limit, metric in checks:
        direction = task.direction(metric)
        if baseline is None:
            out.append(BudgetVerdict(name, metric, deploy.name, limit, None, "not_measured",
                                     "no reference model to measure the drop from: pass --reference"))
            continue
        drop, _ = metric_drop(baseline.measurements, deploy.measurements, metric, direction)
        if drop is None:
            out.append(BudgetVerdict(name, metric, deploy.name, limit, None, "not_measured",
                                     f"{metric} was not measured"))
            continue
        how = ("baseline minus deployed" if direction == "higher"
               else "deployed minus baseline (lower is better)")
        if name == "max_metric_rel_drop":
            base = _value(baseline.measurements, metric)
            if not base and drop > 0:   # any worsening of a perfect 0 is unbounded, relatively
                out.append(BudgetVerdict(name, metric, deploy.name, limit, None, "fail",
                                         f"{metric}: the baseline's is 0 and the deployed file's "
                                         f"is worse by {drop:.6g}; set budgets.max_metric_drop "
                                         "for an absolute limit"))
                continue
            drop, how = relative_drop(drop, base), f"({how}) / |baseline|"
        out.append(BudgetVerdict(name, metric, deploy.name, limit, drop,
                                 "pass" if drop <= limit else "fail",
                                 f"{metric}: {how}, on the test split"))
    return out


def budget_notes(budgets, task: Task, target: str) -> list[str]:
    """Say when a quality budget of the target cannot apply to this model."""
    if budgets.max_accuracy_drop is not None and budgets.max_metric_drop is None \
            and getattr(budgets, "max_metric_rel_drop", None) is None \
            and not any(o.kind == "classification" for o in task.outputs):
        return [f"target {target}'s max_accuracy_drop does not apply: the model has no "
                "classification output; set budgets.max_metric_rel_drop or max_metric_drop "
                f'(and budgets.metric, e.g. "{task.primary}") in a target profile to bound its quality']
    return []
