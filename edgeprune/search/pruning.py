"""Stopping a hopeless trial during its fine-tuning (Optuna's median rule).

Optuna's ``MedianPruner`` cannot be used as it is: ``Trial.report`` and
``Trial.should_prune`` are not supported in multi-objective studies. The same rule is
applied here on the validation metric each fine-tuning epoch logs
(``training.EPOCH_HOOK``). Trials are compared at the same point of their phase, not at
the same epoch: the search varies the fine-tuning length (x1 to x24), and a pruning
schedule ramps sparsity over the whole phase, so epoch 40 is the end of one trial's ramp
and the first seventh of another's. Each phase is cut in tenths; the value at the last
epoch of each tenth is stored in the trial's user attribute ``curve`` under
``PHASE:TENTH`` (1..10). From ``warmup`` of the phase on, a trial whose value is worse
than the median of the completed trials' values at the same tenth by more than
``margin`` is stopped (``optuna.TrialPruned``), once ``startup`` completed trials have a
value there. Only classification (``val_accuracy``) is watched; other tasks are never
pruned.

Sparsity ramps make early epochs of strongly pruned recipes look worse than they end, so
the rule waits for half the phase and keeps a margin: it stops wrecks, not close calls.
Trials queued around the best one (steps.py) are never stopped: a retry of a 95% trial
with 6x fine-tuning was stopped mid-ramp against three trials, two of them 70% sparse;
run to its end, it met every budget.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

WATCHED = "val_accuracy"


@dataclass(frozen=True)
class MedianRule:
    warmup: float = 0.5    # fraction of a phase's epochs before any decision
    startup: int = 3       # completed trials with a value at the same tenth
    margin: float = 0.02   # points of the metric below the median

    def hopeless(self, value: float, others: list[float], progress: float) -> bool:
        if progress < self.warmup or len(others) < self.startup:
            return False
        return value < statistics.median(others) - self.margin

    def describe(self) -> str:
        return (f"median rule on {WATCHED}: from {self.warmup:.0%} of each fine-tuning phase, "
                f"stop a trial more than {self.margin:g} below the median of at least {self.startup} "
                "completed trials at the same tenth of the phase")


def tenth(epoch: int, epochs: int) -> int | None:
    """The tenth of the phase (1..10) that ``epoch`` (0-based) completes, else None."""
    now = (epoch + 1) * 10 // epochs
    return now if now > epoch * 10 // epochs else None


def epoch_hook(trial, rule: MedianRule, log=lambda msg: None, judge: bool = True):
    """The ``EPOCH_HOOK`` for an Optuna trial: records the curve, raises TrialPruned
    (unless ``judge`` is false: a trial queued around the best one, steps.py, runs to its
    end; deep pruning looks worse than shallow mid-ramp, and such a trial is there because
    its neighbour met, or nearly met, the budgets)."""
    import optuna

    curve: dict[str, float] = {}

    def hook(phase: str, epoch: int, epochs: int, logs: dict) -> None:
        part = tenth(epoch, epochs)
        if WATCHED not in logs or part is None:
            return
        step = f"{phase}:{part}"
        value = float(logs[WATCHED])
        curve[step] = value
        trial.set_user_attr("curve", dict(curve))
        done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        others = [t.user_attrs["curve"][step] for t in done if step in t.user_attrs.get("curve", {})]
        if judge and rule.hopeless(value, others, part / 10):
            log(f"trial {trial.number}: {WATCHED} {value:.4f} at {part}/10 of {phase}, median of "
                f"{len(others)} completed trials {statistics.median(others):.4f}: stopped")
            raise optuna.TrialPruned(f"{WATCHED} {value:.4f} at {part}/10 of {phase} is more than "
                                     f"{rule.margin:g} below the median {statistics.median(others):.4f}")

    return hook
