"""The accuracy back-off: try, validate, keep the best that meets the budgets.

When the deployed artifact of the default recipe misses ``max_accuracy_drop``, the
export tries the candidates of :func:`edgeprune.search.space.backoff_ladder` in order
(most compressed first), each a full compress / export / validate of the deployed
artifact, and stops at the first that meets every budget, or that meets the accuracy
budget and misses only what the first export missed too (a size budget that the
dense file misses whatever its sparsity: gentler recipes cannot fix it). A candidate whose expected
time no longer fits in the budget of extra time is skipped, and said so. Every attempt
is reported; the chosen one is the best by :func:`rank`.

The loop knows nothing of Keras or runtimes: ``evaluate(candidate) -> Trial`` does the
work, so a wider search (more candidates, another order, workers) reuses :class:`Trial`,
:func:`rank` and :func:`best` as they are.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .space import Candidate


@dataclass
class Trial:
    """One candidate recipe, evaluated (or skipped, or failed with an input error)."""

    candidate: Candidate
    verdicts: list = field(default_factory=list)    # report.schema.BudgetVerdict
    metric: float | None = None                     # the deployed artifact's task metric
    seconds: float = 0.0
    error: str | None = None
    skipped: str | None = None
    payload: Any = None                              # what the caller needs to finish with it
    higher_is_better: bool = True                    # the metric's direction (accuracy: higher)

    @property
    def evaluated(self) -> bool:
        return self.error is None and self.skipped is None

    @property
    def failed(self) -> list[str]:
        return [v.name for v in self.verdicts if v.verdict != "pass"]

    @property
    def meets(self) -> bool:
        return self.evaluated and not self.failed

    def to_report(self) -> dict:
        state = ("skipped" if self.skipped else "error" if self.error else
                 "meets every budget" if self.meets else f"misses {', '.join(self.failed)}")
        drop = next((v.value for v in self.verdicts if v.name in QUALITY), None)
        return {"label": self.candidate.label, "changes": list(self.candidate.changes),
                "state": state, "metric": self.metric, "metric_drop": drop,
                "failed_budgets": self.failed if self.evaluated else [],
                "seconds": round(self.seconds, 1), "note": self.skipped or self.error or ""}


def rank(trial: Trial) -> tuple:
    """Smaller is better: evaluated first, then fewer failed budgets, then the better metric."""
    if trial.metric is None:
        return (not trial.evaluated, len(trial.failed), math.inf)
    return (not trial.evaluated, len(trial.failed), -trial.metric if trial.higher_is_better else trial.metric)


def best(trials: list[Trial]) -> Trial:
    """The best trial by :func:`rank`; the earliest (most compressed) among equals."""
    return min(trials, key=rank)


#: The quality budgets the back-off protects (see edgeprune/tasks/budget.py).
QUALITY = ("max_accuracy_drop", "max_metric_drop", "max_metric_rel_drop")


def misses_quality(trial: Trial) -> bool:
    return any(name in trial.failed for name in QUALITY)


@dataclass
class BackoffResult:
    attempts: list[Trial]
    chosen: Trial
    budget_s: float
    budget: str            # how the budget was set, in words
    stopped: str           # why the loop ended

    def to_report(self) -> dict:
        return {"ran": True, "budget_s": round(self.budget_s, 1), "budget": self.budget,
                "stopped": self.stopped, "chosen": self.chosen.candidate.label,
                "attempts": [t.to_report() for t in self.attempts]}


def back_off(first: Trial, ladder: list[Candidate], evaluate: Callable[[Candidate], Trial], *,
             budget_s: float, budget: str, estimate: Callable[[Candidate], float],
             log: Callable[[str], None] = lambda msg: None,
             clock: Callable[[], float] = time.monotonic) -> BackoffResult:
    """Try ``ladder`` after ``first`` until one meets every budget or the time is spent.

    ``estimate(candidate)`` is the expected seconds of one evaluation; a candidate that
    would end past ``budget_s`` (counted from now) is skipped. ``evaluate`` may raise an
    :class:`~edgeprune.errors.EdgepruneError` (a recipe the model cannot take): it is
    recorded and the next candidate tried; any other exception is a bug and propagates.
    """
    from ..errors import EdgepruneError

    attempts = [first]
    started = clock()
    stopped = f"no candidate met every budget ({len(ladder)} tried or skipped)"
    for n, cand in enumerate(ladder, start=1):
        left = budget_s - (clock() - started)
        expected = estimate(cand)
        if expected > left:
            attempts.append(Trial(cand, skipped=f"expected to take about {expected:.0f} s; "
                                                 f"{max(left, 0):.0f} s of the budget left"))
            log(f"back-off {n}/{len(ladder)}: {cand.label}: skipped ({attempts[-1].skipped})")
            continue
        log(f"back-off {n}/{len(ladder)}: {cand.label} ({'; '.join(cand.changes)})")
        t0 = clock()
        try:
            trial = evaluate(cand)
        except EdgepruneError as exc:
            trial = Trial(cand, error=str(exc).splitlines()[0])
        trial.seconds = clock() - t0
        attempts.append(trial)
        log(f"back-off {n}/{len(ladder)}: {cand.label}: {trial.to_report()['state']}"
            + (f", metric {trial.metric:.4f}" if trial.metric is not None else "")
            + f" ({trial.seconds:.0f} s)")
        if trial.meets:
            stopped = f"{cand.label!r} meets every budget"
            break
        if trial.evaluated and not misses_quality(trial) and set(trial.failed) <= set(first.failed):
            stopped = (f"{cand.label!r} meets the quality budget; what it misses "
                       f"({', '.join(trial.failed)}) no gentler recipe can fix")
            break
    return BackoffResult(attempts, best(attempts), budget_s, budget, stopped)


def declined(recipe, *, recipe_given: bool, flag: bool | None) -> str | None:
    """Why the back-off does not run for ``recipe`` (None: it runs). It runs for the
    default recipe; a recipe the user gave (--recipe, --epochs) is never changed unless
    they pass --backoff; --no-backoff or an unset ``recipe.backoff`` turn it off."""
    if recipe.backoff is None:
        return "recipe.backoff is unset"
    if flag is False:
        return "--no-backoff"
    if recipe_given and not flag:
        return ("the recipe was given (--recipe or --epochs), so it is not changed; pass --backoff "
                "to try the steps in would_try")
    return None


def time_budget(spec, seconds: dict[str, float], files: int) -> tuple[float, str, Callable[[Candidate], float]]:
    """The budget of extra seconds (``spec``: recipe.backoff), how it was set, and the
    expected seconds of a candidate: the first export's compression time scaled by the
    candidate's cost, plus exporting and validating one file."""
    total = sum(seconds.values())
    budget_s = min(spec.max_extra_factor * total, spec.max_extra_seconds or math.inf)
    text = f"{spec.max_extra_factor:g} x the first export ({total:.0f} s)" + (
        f", at most {spec.max_extra_seconds:g} s" if spec.max_extra_seconds else "")
    per_file = seconds.get("export", 0.0) / max(files, 1)
    return budget_s, text, lambda cand: seconds.get("compress", 0.0) * cand.cost + per_file
