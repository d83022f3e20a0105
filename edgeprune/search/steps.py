"""Steps around the best trial: what runs next once a trial meets every budget.

The sampler proposes trials anywhere in the space; within a short budget it rarely comes
back to refine its best (on the reference model, 8 of 20 TPE trials did not prune at
all, while the recipe one step from the best trial was smaller and met the budgets). So,
after each trial (``after_trial``):

- a trial that meets every budget and is the smallest such trial so far queues the trials
  one step more compressed than it (``choices.neighbours``), with the user attribute
  ``step_from``; Optuna runs queued trials before asking the sampler;
- a trial that misses only the accuracy (task metric) budget, and is smaller than the
  best trial that meets them all, is queued again with the next longer fine-tuning
  (``choices.longer``, attribute ``retry_of``): the accuracy back-off's first rung
  (space.backoff_ladder), which deep pruning often needs; a retry is retried again only
  when it took the budgets' excess down by a third (``MIN_GAIN``). Where longer
  fine-tuning stops helping (or is at its longest), the trial is queued once more
  distilled (``choices.distilled``), where the space offers it: the ladder's next rung.

Queued trials run first come, first served, and a better trial may finish in between: a
queued step whose trial is no longer the best, or a retry of a trial no longer smaller
than the best, is skipped when its turn comes (``skip_if_stale``: pruned at once, with
the attribute ``skipped``). Skipped trials never ran and do not count against
``--max-trials`` (``counted``, ``StopAt``).

Nor do repeats: a sampler over categorical choices proposes a recipe it has already
tried (2 of the reference model's 20 TPE trials did). A repeat is answered from the trial
cache in a fraction of a second and marked ``repeat_of`` (``mark_repeat``); ``StopAt``
still ends a study whose repeats alone reach ``--max-trials``, a space tried out.
"""

from __future__ import annotations

SKIPPED = "skipped"
REPEAT = "repeat_of"
#: A retry is retried again only if it took the budgets' excess (objective.violation) down
#: by at least this fraction: on the DS-CNN, 95% pruning lost 6.8 points with x3 fine-tuning
#: and 8.8 with x6; x12 and x24 would have taken 350 s of a 900 s search.
MIN_GAIN = 1 / 3


_STARTED = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def counted(study) -> int:
    """Trials that count against the budget: started or finished, neither skipped unrun
    nor a repeat of an earlier trial."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in _STARTED
               and SKIPPED not in t.user_attrs and REPEAT not in t.user_attrs)


def repeats(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if REPEAT in t.user_attrs)


def mark_repeat(trial, key: str) -> int | None:
    """Mark ``trial`` a repeat of the earliest finished trial of its study with the same
    cache ``key`` (the same recipe, model, data and seed); that trial's number, or None."""
    earlier = next((t.number for t in trial.study.get_trials(deepcopy=False)
                    if t.number != trial.number and t.state.name in ("COMPLETE", "FAIL")
                    and t.user_attrs.get("key") == key), None)
    if earlier is not None:
        trial.set_user_attr(REPEAT, earlier)
    return earlier


class StopAt:
    """Optuna callback: stop the study once ``counted`` reaches ``max_trials``."""

    def __init__(self, max_trials: int):
        self.max_trials = max_trials

    def __call__(self, study, trial) -> None:
        if counted(study) >= self.max_trials or repeats(study) >= self.max_trials:
            study.stop()


def best(study, exclude: int | None = None):
    """The smallest completed trial that meets every budget (values: gzip, cost), or None."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and t.user_attrs.get("violation", 1.0) == 0 and t.number != exclude]
    return min(done, key=lambda t: (tuple(t.values), t.number), default=None)


def after_trial(trial, space, result: dict, values: tuple[float, float], log) -> None:
    """Queue the steps from ``trial`` (see the module's docstring)."""
    from .backoff import QUALITY
    from .choices import distilled, longer, neighbours

    study = trial.study
    incumbent = best(study, exclude=trial.number)
    if result["violation"] == 0:
        if incumbent is not None and tuple(incumbent.values) <= tuple(values):
            return
        queued = sum(_enqueue(study, params, {"step_from": trial.number})
                     for params in neighbours(dict(trial.params), space))
        if queued:
            log(f"trial {trial.number} is the smallest that meets every budget: {queued} trial(s) one "
                "step more compressed are queued next")
        return
    failed = result.get("failed") or []
    if not failed or not all(name in QUALITY for name in failed):
        return
    if incumbent is not None and values[0] >= incumbent.values[0]:
        return
    params = dict(trial.params)
    if "retry_of" in trial.user_attrs:
        parent = study.get_trials(deepcopy=False)[trial.user_attrs["retry_of"]]
        before = parent.user_attrs.get("violation")
        if before is not None and result["violation"] > before * (1 - MIN_GAIN):
            lever = "distillation" if params.get("distill") and not parent.params.get("distill") \
                else "longer fine-tuning"
            again = distilled(params) if lever == "longer fine-tuning" else None
            queued = again is not None and _enqueue(study, again, {"retry_of": trial.number})
            log(f"trial {trial.number}: {lever} took the budgets' excess from {before:.3g} to "
                f"{result['violation']:.3g}, " + ("queued again distilled" if queued else "not retried again"))
            return
    again, how = longer(params), "with x{} fine-tuning"
    if again is None:
        again, how = distilled(params), "distilled"
    if again is not None and _enqueue(study, again, {"retry_of": trial.number}):
        log(f"trial {trial.number} misses only the accuracy budget: queued again "
            + how.format(again.get("finetune")))


def _enqueue(study, params: dict, attrs: dict) -> bool:
    """Queue ``params`` unless a trial with them exists or is queued; True when queued."""
    from optuna.trial import TrialState

    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) > waiting


def skip_if_stale(trial, log) -> None:
    """Prune a queued step or retry that a better trial made pointless, before it runs."""
    import optuna

    attrs = trial.user_attrs
    if "step_from" not in attrs and "retry_of" not in attrs:
        return
    study = trial.study
    incumbent = best(study)
    if incumbent is None:
        return
    origin = study.get_trials(deepcopy=False)[attrs.get("step_from", attrs.get("retry_of"))]
    if "step_from" in attrs and incumbent.number != origin.number \
            and tuple(incumbent.values) < tuple(origin.values):
        why = f"trial {incumbent.number} is now smaller than trial {origin.number}, whose step this was"
    elif "retry_of" in attrs and origin.values and origin.values[0] >= incumbent.values[0]:
        why = f"trial {incumbent.number} is now no larger than trial {origin.number}, retried here"
    else:
        return
    trial.set_user_attr(SKIPPED, why)
    log(f"trial {trial.number}: skipped ({why})")
    raise optuna.TrialPruned(why)
