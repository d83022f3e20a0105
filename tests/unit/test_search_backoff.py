"""The back-off: candidate recipes from a base recipe, and the try / validate / keep-the-best loop."""

from __future__ import annotations

import pytest

from edgeprune.errors import ConfigError
from edgeprune.recipe import BackoffSpec, ClusterSpec, PruneSpec, QatSpec, Recipe
from edgeprune.report.schema import BudgetVerdict
from edgeprune.search.backoff import Trial, back_off, best, declined, time_budget
from edgeprune.search.space import Candidate, backoff_ladder, derive


def test_backoff_ladder_goes_from_longer_finetuning_to_lower_sparsity_to_dense():
    ladder = backoff_ladder(Recipe())
    assert [c.label for c in ladder] == ["longer fine-tuning", "sparsity 50%", "sparsity 25%",
                                         "dense (no pruning)"]
    assert ladder[0].changes == ("finetune.epochs: 4 -> 8",)
    assert ladder[1].recipe.prune.final_sparsity == 0.5 and ladder[1].recipe.finetune.epochs == 8
    assert ladder[3].recipe.prune is None and ladder[3].cost == 0.0 and ladder[1].cost == 2.0


def test_backoff_ladder_lowers_the_sparsity_after_channel_pruning_with_the_channels():
    ladder = backoff_ladder(Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5, then_sparsity=0.8)))
    assert [c.label for c in ladder] == ["longer fine-tuning", "sparsity 34%, then 54%",
                                         "sparsity 17%, then 26%", "dense (no pruning)"]
    assert ladder[1].recipe.prune.then_sparsity == 0.54 and ladder[1].recipe.prune.structure == "channel"


def test_backoff_ladder_distils_after_longer_finetuning_where_the_data_allows():
    from edgeprune.recipe import DistillSpec

    ladder = backoff_ladder(Recipe(qat=QatSpec()), distill=True)
    assert [c.label for c in ladder] == ["longer fine-tuning", "longer fine-tuning, distilled",
                                         "sparsity 50%", "sparsity 25%", "dense (no pruning)"]
    assert ladder[1].changes == ("finetune.distill.alpha: none -> 0.7",
                                 "finetune.distill.temperature: none -> 4",
                                 "finetune.epochs: 4 -> 8")
    assert ladder[1].recipe.finetune.distill == DistillSpec() and ladder[1].cost == ladder[0].cost
    assert [c.recipe.finetune.distill for c in ladder[2:]] == [None] * 3     # a rung of its own
    # a recipe that already distils, backoff.distill off, or the data does not allow it
    assert "distilled" not in backoff_ladder(Recipe(finetune={"distill": {}}), distill=True)[1].label
    assert "distilled" not in backoff_ladder(Recipe(backoff=BackoffSpec(distill=False)), distill=True)[1].label
    assert "distilled" not in backoff_ladder(Recipe())[1].label
    # no longer fine-tuning rung: the recipe itself, distilled; nothing fine-tuned: none
    assert [c.label for c in backoff_ladder(Recipe(backoff=BackoffSpec(finetune_factor=1.0)),
                                            distill=True)][:2] == ["distilled", "sparsity 50%"]
    assert [c.label for c in backoff_ladder(Recipe(prune=None, cluster=ClusterSpec()), distill=True)] == \
        ["distilled", "dense (no pruning)"]
    assert [c.label for c in backoff_ladder(Recipe(prune=None, quantize=("int8",)), distill=True)] == []


def test_backoff_ladder_drops_what_needs_pruning_when_going_dense():
    base = Recipe(cluster=ClusterSpec(), qat=QatSpec(preserve="sparsity_and_clusters"),
                  backoff=BackoffSpec(sparsity_factors=(0.5,), finetune_factor=1.0))
    ladder = backoff_ladder(base)
    assert [c.label for c in ladder] == ["sparsity 38%", "dense (no pruning)"]
    dense = ladder[-1].recipe
    assert dense.cluster is None and dense.qat.preserve == "none"


def test_derive_validates_like_a_recipe_file():
    with pytest.raises(Exception, match="final_sparsity"):
        derive(Recipe(), "bad", prune=PruneSpec().model_dump() | {"final_sparsity": 1.5})


def _trial(label, failed=(), metric=0.9, **kw):
    verdicts = [BudgetVerdict(name, "f", "int8.tflite", 1, 2, "fail") for name in failed]
    verdicts.append(BudgetVerdict("max_size_bytes", "size_bytes", "int8.tflite", 10, 5, "pass"))
    return Trial(Candidate(label, Recipe()), verdicts, metric, **kw)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_back_off_stops_at_the_first_candidate_that_meets_every_budget():
    ladder = [Candidate(n, Recipe()) for n in ("a", "b", "c")]
    results = {"a": _trial("a", ["max_accuracy_drop"], 0.85), "b": _trial("b", [], 0.95)}
    tried = []

    def evaluate(cand):
        tried.append(cand.label)
        return results[cand.label]

    first = _trial("as exported", ["max_accuracy_drop"], 0.80)
    result = back_off(first, ladder, evaluate, budget_s=100, budget="test", estimate=lambda c: 1.0)
    assert tried == ["a", "b"] and result.chosen.candidate.label == "b"
    report = result.to_report()
    assert [a["state"] for a in report["attempts"]] == ["misses max_accuracy_drop", "misses max_accuracy_drop",
                                                        "meets every budget"]
    assert report["chosen"] == "b" and report["stopped"] == "'b' meets every budget"


def test_back_off_skips_what_does_not_fit_the_budget_and_keeps_the_best_tried():
    clock = _Clock()
    ladder = [Candidate("slow", Recipe(), cost=10.0), Candidate("fast", Recipe(), cost=0.0)]

    def evaluate(cand):
        clock.now += 3.0
        return _trial(cand.label, ["max_accuracy_drop"], 0.88)

    first = _trial("as exported", ["max_accuracy_drop"], 0.80, seconds=5.0)
    result = back_off(first, ladder, evaluate, budget_s=20, budget="test",
                      estimate=lambda c: 5.0 * c.cost + 1.0, clock=clock)
    slow, fast = result.attempts[1:]
    assert slow.skipped.startswith("expected to take about 51 s; 20 s of the budget left")
    assert fast.seconds == 3.0 and result.chosen is fast          # fewer misses impossible: best metric
    assert result.stopped.startswith("no candidate met every budget")


def test_back_off_records_an_input_error_and_goes_on():
    def evaluate(cand):
        if cand.label == "bad":
            raise ConfigError("no layer of the model can be pruned", where="recipe.prune")
        return _trial(cand.label)

    ladder = [Candidate("bad", Recipe()), Candidate("good", Recipe())]
    result = back_off(_trial("first", ["max_accuracy_drop"]), ladder, evaluate, budget_s=10, budget="t",
                      estimate=lambda c: 0.0)
    assert result.attempts[1].error.startswith("recipe.prune: no layer") and result.chosen.candidate.label == "good"


def test_best_prefers_fewer_failed_budgets_then_the_higher_metric():
    a = _trial("a", ["max_accuracy_drop", "max_size_bytes"], 0.99)
    b = _trial("b", ["max_accuracy_drop"], 0.80)
    c = _trial("c", ["max_accuracy_drop"], 0.85)
    assert best([a, b, c]) is c


def test_declined_leaves_a_given_recipe_alone_unless_asked():
    assert declined(Recipe(), recipe_given=False, flag=None) is None
    assert "not changed" in declined(Recipe(), recipe_given=True, flag=None)
    assert declined(Recipe(), recipe_given=True, flag=True) is None
    assert declined(Recipe(), recipe_given=False, flag=False) == "--no-backoff"
    assert declined(Recipe(backoff=None), recipe_given=False, flag=True) == "recipe.backoff is unset"


def test_time_budget_is_a_multiple_of_the_first_export_capped_in_seconds():
    budget_s, text, estimate = time_budget(BackoffSpec(max_extra_factor=3.0, max_extra_seconds=50.0),
                                           {"compress": 20.0, "export": 12.0}, files=6)
    assert budget_s == 50.0 and text == "3 x the first export (32 s), at most 50 s"
    assert estimate(Candidate("x", Recipe(), cost=2.0)) == 42.0


def test_back_off_stops_when_accuracy_is_met_and_only_what_the_first_missed_remains():
    ladder = [Candidate(n, Recipe()) for n in ("a", "b")]
    first = _trial("first", ["max_size_bytes", "max_accuracy_drop"], 0.7)
    result = back_off(first, ladder, lambda c: _trial(c.label, ["max_size_bytes"], 0.93), budget_s=100,
                      budget="t", estimate=lambda c: 0.0)
    assert len(result.attempts) == 2 and result.chosen.candidate.label == "a"
    assert "'a' meets the quality budget; what it misses (max_size_bytes)" in result.stopped
