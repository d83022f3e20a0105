"""Stopping a hopeless trial after its first fine-tuning epochs (Optuna's median rule).

Optuna's ``MedianPruner`` cannot be used as it is: ``Trial.report`` and
``Trial.should_prune`` are not supported in multi-objective studies. The same rule is
applied here on the validation metric each fine-tuning epoch logs
(``training.EPOCH_HOOK``): every epoch's value is stored in the trial's user
attribute ``curve`` under ``PHASE:EPOCH``; from the ``warmup``-th epoch of a phase on, a
trial whose value is worse than the median of the completed trials' values at the same
step by more than ``margin`` is stopped (``optuna.TrialPruned``), once ``startup``
completed trials have a value there. Only classification (``val_accuracy``) is watched;
other tasks are never pruned.

Sparsity ramps make early epochs of strongly pruned recipes look worse than they end, so
the rule waits ``warmup`` epochs and keeps a margin: it stops wrecks, not close calls.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

WATCHED = "val_accuracy"


@dataclass(frozen=True)
class MedianRule:
    warmup: int = 1        # epochs of a phase before any decision (0-based index >= warmup)
    startup: int = 3       # completed trials with a value at the step
    margin: float = 0.02   # points of the metric below the median

    def hopeless(self, value: float, others: list[float], epoch: int) -> bool:
        if epoch < self.warmup or len(others) < self.startup:
            return False
        return value < statistics.median(others) - self.margin

    def describe(self) -> str:
        return (f"median rule on {WATCHED}: from epoch {self.warmup + 1} of each fine-tuning phase, "
                f"stop a trial more than {self.margin:g} below the median of at least {self.startup} "
                "completed trials at the same epoch")


def epoch_hook(trial, rule: MedianRule, log=lambda msg: None):
    """The ``EPOCH_HOOK`` for an Optuna trial: records the curve, raises TrialPruned."""
    import optuna

    curve: dict[str, float] = {}

    def hook(phase: str, epoch: int, logs: dict) -> None:
        if WATCHED not in logs:
            return
        step = f"{phase}:{epoch}"
        value = float(logs[WATCHED])
        curve[step] = value
        trial.set_user_attr("curve", dict(curve))
        done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        others = [t.user_attrs["curve"][step] for t in done if step in t.user_attrs.get("curve", {})]
        if rule.hopeless(value, others, epoch):
            log(f"trial {trial.number + 1}: {WATCHED} {value:.4f} at {step}, median of {len(others)} "
                f"completed trials {statistics.median(others):.4f}: stopped")
            raise optuna.TrialPruned(f"{WATCHED} {value:.4f} at {step} is more than {rule.margin:g} "
                                     f"below the median {statistics.median(others):.4f}")

    return hook
