"""The search's pieces without a real export: the recipe space, TOML round trip, the trial
cache, objectives and constraint, the Pareto fronts, the choice, the pruning rule, and the
worker loop over a real Optuna study with the export replaced by a fake."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest

from edgeprune.errors import ConfigError
from edgeprune.recipe import ClusterSpec, FinetuneSpec, PruneSpec, QatSpec, Recipe, load_recipe
from edgeprune.search import runner
from edgeprune.search.cache import TrialCache, trial_key
from edgeprune.search.choices import candidate, default_params, neighbours, space_for, suggest
from edgeprune.search.command import choose, trial_rows, warm_starts
from edgeprune.search.objective import objectives, pareto, rank_key, summarize, violation
from edgeprune.search.pruning import MedianRule
from edgeprune.search.recipe_toml import dumps, write_recipe

DIGITS_HOST = Recipe(prune=PruneSpec(final_sparsity=0.7, frequency=10),
                     finetune=FinetuneSpec(epochs=8))


# ------------------------------------------------------------------ recipe TOML

def test_write_recipe_reads_back_the_same_recipe_when_every_section_is_set(tmp_path):
    recipe = Recipe(seed=7, prune=PruneSpec(scope="global", final_sparsity=0.85,
                                            per_layer={"conv/1": 0.25}, stem_and_classifier_max_sparsity=0.3),
                    cluster=ClusterSpec(number_of_clusters=8), qat=QatSpec(preserve="sparsity_and_clusters"),
                    quantize=("int8",), formats=("tflite",), int8_io=True,
                    finetune=FinetuneSpec(learning_rate=1e-05))
    write_recipe(recipe, tmp_path / "r.toml", header="line one\nline two")
    assert load_recipe(tmp_path / "r.toml") == recipe
    assert (tmp_path / "r.toml").read_text().startswith("# line one\n# line two\n")


def test_write_recipe_writes_steps_that_are_off_as_false(tmp_path):
    recipe = Recipe(prune=None, quantize=("float16",), formats=("tflite",), deploy="float16.tflite")
    assert "prune = false" in dumps(recipe)
    write_recipe(recipe, tmp_path / "r.toml")
    assert load_recipe(tmp_path / "r.toml").prune is None


def test_write_recipe_refuses_when_a_none_would_read_back_as_the_default(tmp_path):
    recipe = Recipe(prune=PruneSpec(stem_and_classifier_max_sparsity=None))
    with pytest.raises(ConfigError, match="differs in prune"):
        write_recipe(recipe, tmp_path / "r.toml")
    assert not (tmp_path / "r.toml").exists()


# ------------------------------------------------------------------ space

def test_default_params_give_the_base_recipe_narrowed_to_its_deployed_artifact():
    space = space_for(DIGITS_HOST)
    params = default_params(DIGITS_HOST, space)
    assert params["structure"] == "unstructured" and params["sparsity"] == 0.7
    got = candidate(DIGITS_HOST, params).recipe
    assert got.quantize == ("int8",) and got.formats == ("tflite",)
    assert got.prune == DIGITS_HOST.prune and got.finetune == DIGITS_HOST.finetune


def test_space_lists_the_default_deploy_first_and_leaves_float32_out():
    space = space_for(DIGITS_HOST)
    assert space.deploys[0] == "int8.tflite"
    assert not any(d.startswith("float32.") for d in space.deploys)
    assert "int8.onnx" in space.deploys


def test_default_params_are_none_when_the_base_recipe_is_outside_the_space():
    base = Recipe(prune=PruneSpec(structure="m_by_n"))
    assert default_params(base, space_for(base)) is None


@pytest.mark.parametrize("params, expect", [
    ({"structure": "channel", "channels": 0.3, "then": 0.0, "finetune": 1, "clusters": 16, "qat": True,
      "deploy": "int8.tflite", "int8_io": True, "per_tensor": False, "strip": False},
     lambda r: r.prune.structure == "channel" and not r.cluster.preserve_sparsity
     and r.qat.preserve == "clusters" and r.int8_io and r.int8_per_channel and r.finetune.epochs == 8 and r.cluster.epochs == 4
     and not r.tflite_strip),
    ({"structure": "unstructured", "sparsity": 0.9, "scope": "global", "floor": 0.3, "finetune": 3,
      "clusters": 8, "qat": True, "deploy": "int8.onnx"},
     lambda r: r.qat.preserve == "sparsity_and_clusters" and r.formats == ("onnx",)
     and r.prune.stem_and_classifier_max_sparsity == 0.3 and r.finetune.epochs == 24
     and r.cluster.epochs == 12),
    ({"structure": "unstructured", "sparsity": 0.97, "scope": "global", "floor": 0.7, "finetune": 6,
      "clusters": 16, "qat": False, "deploy": "int8.tflite", "int8_io": False, "per_tensor": True,
      "strip": True},
     lambda r: not r.int8_per_channel and r.finetune.epochs == 48 and r.prune.max_layer_sparsity == 0.99
     and r.cluster.epochs == 24 and r.tflite_strip),   # clustering's epochs x6 too
    ({"structure": "channel", "channels": 0.5, "then": 0.9, "finetune": 3, "clusters": 8, "qat": True,
      "deploy": "int8.tflite", "int8_io": True, "per_tensor": True, "strip": True},
     lambda r: r.prune.structure == "channel" and r.prune.then_sparsity == 0.9
     and r.prune.max_layer_sparsity == 0.92 and r.cluster.preserve_sparsity
     and r.qat.preserve == "sparsity_and_clusters" and r.cluster.epochs == 12),
    ({"structure": "none", "clusters": 0, "qat": False, "deploy": "float16.tflite", "strip": False},
     lambda r: r.prune is None and r.cluster is None and r.deploy == "float16.tflite"),
])
def test_suggest_makes_the_recipe_the_parameters_describe(params, expect):
    recipe = suggest(optuna.trial.FixedTrial(params), DIGITS_HOST, space_for(DIGITS_HOST)).recipe
    assert expect(recipe)
    assert recipe.artifact_names() == [recipe.deploy]


def test_warm_starts_are_the_default_then_a_deep_prune_and_cluster_then_channels_then_sparse_channels():
    starts = warm_starts(DIGITS_HOST, space_for(DIGITS_HOST))
    assert starts[0]["sparsity"] == 0.7 and starts[0]["finetune"] == 1 and not starts[0]["per_tensor"]
    assert starts[1]["sparsity"] == 0.95 and starts[1]["clusters"] == 16 and starts[1]["finetune"] == 3
    assert starts[1]["per_tensor"] and starts[1]["strip"] and not starts[0]["strip"]
    assert starts[2]["structure"] == "channel" and starts[2]["channels"] == 0.5 and starts[2]["then"] == 0.0
    assert starts[3]["structure"] == "channel" and starts[3]["channels"] == 0.3 and starts[3]["then"] == 0.9
    assert starts[3]["clusters"] == 8 and starts[3]["per_tensor"] and starts[3]["strip"] and len(starts) == 4
    for params in starts:
        suggest(optuna.trial.FixedTrial(params), DIGITS_HOST, space_for(DIGITS_HOST))


# ------------------------------------------------------------------ cache

def test_neighbours_are_one_step_more_compressed_the_steps_that_cost_no_accuracy_first():
    from edgeprune.search.choices import longer

    space = space_for(DIGITS_HOST.model_copy(update={"quantize": ("int8",), "formats": ("tflite",)}))
    params = {"structure": "unstructured", "sparsity": 0.95, "scope": "global", "floor": 0.7,
              "finetune": 3, "clusters": 16, "qat": False, "deploy": "int8.tflite", "int8_io": False,
              "per_tensor": False, "strip": False}
    steps = [{k: v for k, v in n.items() if params.get(k) != v} for n in neighbours(params, space)]
    assert steps == [{"strip": True}, {"int8_io": True}, {"per_tensor": True}, {"sparsity": 0.97},
                     {"clusters": 8}]
    for n in neighbours(params, space):                   # every one is a recipe of the space
        candidate(DIGITS_HOST, n)
    deepest = {**params, "sparsity": 0.97, "clusters": 8, "int8_io": True, "per_tensor": True, "strip": True}
    assert neighbours(deepest, space) == []
    channel = {"structure": "channel", "channels": 0.5, "finetune": 6, "clusters": 0, "qat": False,
               "deploy": "float16.tflite", "strip": False}
    assert [{k: v for k, v in n.items() if channel.get(k) != v} for n in neighbours(channel, space)] == [
        {"strip": True}, {"channels": 0.6}, {"then": 0.5}, {"clusters": 32}]
    deep_channel = {**channel, "channels": 0.8, "then": 0.9, "clusters": 8, "strip": True}
    assert neighbours(deep_channel, space) == []
    assert neighbours({"structure": "none", "clusters": 8, "qat": True, "deploy": "float16.tflite",
                       "strip": True}, space) == []
    assert neighbours({"structure": "none", "clusters": 8, "qat": True, "deploy": "int8.onnx"},
                      space) == []
    assert longer(params) == {**params, "finetune": 6}
    assert longer(channel) == {**channel, "finetune": 12}
    assert longer({**channel, "finetune": 24}) is None and longer({"structure": "none"}) is None


def test_trial_key_changes_with_the_seed_the_recipe_and_the_inputs():
    inputs = {"model": "a", "data": "b"}
    key = trial_key(inputs, DIGITS_HOST)
    assert key == trial_key(dict(inputs), DIGITS_HOST)
    assert key != trial_key(inputs, DIGITS_HOST.model_copy(update={"seed": 1}))
    assert key != trial_key({"model": "a", "data": "c"}, DIGITS_HOST)
    assert key != trial_key(inputs, DIGITS_HOST.model_copy(update={"int8_io": True}))


def test_trial_cache_hits_only_a_complete_entry(tmp_path):
    cache = TrialCache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", {"gzip_bytes": 10})
    assert cache.get("k") is None                  # result.json but no export folder: not a hit
    (cache.entry("k") / "out").mkdir()
    assert cache.get("k")["gzip_bytes"] == 10
    cache.put("e", {"error": "bad recipe"})
    assert cache.get("e")["error"] == "bad recipe"  # an error needs no folder
    (cache.entry("k") / "result.json").write_text("{not json")
    assert cache.get("k") is None


# ------------------------------------------------------------------ objectives

def _budget(name, limit, value, verdict):
    return {"name": name, "figure": name, "artifact": "int8.tflite", "limit": limit, "value": value,
            "verdict": verdict}


def test_violation_is_zero_when_every_budget_passes_and_grows_with_the_excess():
    assert violation([_budget("max_size_bytes", 100, 50, "pass")]) == 0
    assert violation([_budget("max_size_bytes", 100, 150, "fail")]) == pytest.approx(0.5)
    assert violation([_budget("max_latency_ms", 5, None, "not_measured")]) == 1.0
    assert violation([_budget("max_accuracy_drop", 0.01, 0.01, "fail")]) == pytest.approx(1e-6)


def _report(gzip, latency, acc, budgets):
    fig = lambda v: {"value": v, "unit": "-", "method": "measured", "by": "x"}  # noqa: E731
    return {"deploy": "int8.tflite", "budgets": budgets, "artifacts": [
        {"name": "baseline.keras", "measurements": {"accuracy": fig(0.97)}},
        {"name": "int8.tflite", "file": "model_int8.tflite", "sha256": "s",
         "measurements": {"accuracy": fig(acc), "size_bytes": fig(gzip * 2), "gzip_bytes": fig(gzip),
                          **({"latency_ms": fig(latency)} if latency is not None else {})}}]}


def test_summarize_reads_size_cost_metric_and_verdicts_of_the_deployed_artifact():
    s = summarize(_report(900, 0.02, 0.96, [_budget("max_accuracy_drop", 0.01, 0.011, "fail")]),
                  "accuracy", ("instructions_per_invoke", "latency_ms"))
    assert (s["gzip_bytes"], s["cost_name"], s["cost"], s["metric"]) == (900, "latency_ms", 0.02, 0.96)
    assert s["failed"] == ["max_accuracy_drop"] and s["violation"] > 0 and s["metric_drop"] == 0.011
    assert objectives(s) == (900.0, 0.02)
    missing = summarize(_report(900, None, 0.96, []), "accuracy", ("latency_ms",))
    assert missing["cost"] is None and objectives(missing)[1] == 1e30


def _row(number, gzip, cost, metric, v=0.0):
    return {"number": number, "gzip_bytes": gzip, "size_bytes": gzip, "cost": cost, "metric": metric,
            "violation": v, "state": "complete", "failed": [] if v == 0 else ["max_accuracy_drop"],
            "budgets": [_budget("max_accuracy_drop", 0.01, 0.02 if v else 0.0, "fail" if v else "pass")]}


def test_pareto_keeps_the_trials_no_other_beats_on_both_metric_and_size():
    rows = [_row(0, 1000, 1.0, 0.97), _row(1, 500, 2.0, 0.95), _row(2, 800, 0.5, 0.94),
            _row(3, 400, 3.0, 0.90)]
    assert pareto(rows, "size", True) == [3, 1, 0]
    assert pareto(rows, "cost", True) == [2, 0]


def test_choose_takes_the_smallest_that_meets_every_budget_then_the_cheapest():
    rows = [_row(0, 300, 1.0, 0.9, v=0.5), _row(1, 500, 2.0, 0.95), _row(2, 500, 1.0, 0.94),
            _row(3, 900, 0.1, 0.97)]
    assert choose(rows, "host")["number"] == 2
    assert min(rows, key=rank_key)["number"] == 2


def test_choose_names_the_budget_no_trial_met():
    rows = [_row(0, 300, 1.0, 0.9, v=0.5), _row(1, 200, 1.0, 0.8, v=2.0)]
    with pytest.raises(ConfigError, match="max_accuracy_drop: the lowest value tried is 0.02") as err:
        choose(rows, "cortex-m4")
    assert "budgets max_accuracy_drop" in err.value.where and "--max-trials" in err.value.fix


# ------------------------------------------------------------------ pruning

def test_median_rule_stops_only_after_warmup_with_enough_trials_and_beyond_the_margin():
    rule = MedianRule(warmup=0.5, startup=3, margin=0.02)
    others = [0.9, 0.92, 0.94]
    assert not rule.hopeless(0.5, others, progress=0.4)      # warm-up
    assert not rule.hopeless(0.5, others[:2], progress=0.5)  # too few completed trials
    assert not rule.hopeless(0.905, others, progress=0.5)    # within the margin
    assert rule.hopeless(0.85, others, progress=0.5)


def test_tenth_names_the_last_epoch_of_each_tenth_of_a_phase():
    from edgeprune.search.pruning import tenth

    assert [tenth(e, 10) for e in range(10)] == list(range(1, 11))
    assert [tenth(e, 20) for e in range(20)] == [None, 1, None, 2, None, 3, None, 4, None, 5,
                                                 None, 6, None, 7, None, 8, None, 9, None, 10]
    assert [tenth(e, 4) for e in range(4)] == [2, 5, 7, 10]
    # 48 and 288 epochs (x1 and x6 fine-tuning): the same tenths at the same point of the phase
    assert tenth(23, 48) == tenth(143, 288) == 5 and tenth(47, 48) == tenth(287, 288) == 10


# ------------------------------------------------------------------ the worker loop, export faked

def _job(tmp_path, max_trials=4, prune_rule=None, distill=False):
    base = DIGITS_HOST.model_copy(update={"quantize": ("int8", "float16"), "formats": ("tflite",)})
    return runner.SearchJob(
        target="host", model=None, data=None, metric=None, metric_direction=None, train_epochs=None,
        base_recipe=base.model_dump(mode="python"), space=space_for(base, distill=distill), inputs={"model": "m"},
        primary="accuracy", higher_is_better=True, cost_names=("latency_ms",),
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", sampler="tpe", seed=0,
        cache_dir=str(tmp_path / "trials"), max_trials=max_trials, timeout=None, prune_rule=prune_rule)


def _fake_export(calls, finetune_gain=0.0, distill_gain=2.0):
    """A trial's result without an export: ``sparsity / 20`` points lost (times
    ``(epochs / 8) ** -finetune_gain``: longer fine-tuning helps; divided by
    ``distill_gain`` when distilled), 1000 B x density."""
    def export(trial, job, recipe, entry, log):
        calls.append(recipe)
        (entry / "out").mkdir(parents=True, exist_ok=True)
        if recipe.prune is not None and recipe.prune.structure == "channel" and recipe.qat is not None:
            return {"error": "a combination the fake refuses", "seconds": 0.0}
        sparsity = recipe.prune.final_sparsity if recipe.prune is not None else 0.0
        drop = sparsity / 20 * (recipe.finetune.epochs / 8) ** -finetune_gain
        drop /= distill_gain if recipe.finetune.distill is not None else 1
        budgets = [_budget("max_accuracy_drop", 0.04, drop, "pass" if drop <= 0.04 else "fail")]
        out = summarize(_report(int(1000 * (1 - sparsity)) + (8 if recipe.cluster else 0), 0.01,
                                0.97 - drop, budgets), job.primary, job.cost_names)
        return {**out, "seconds": 0.0, "metric_name": "accuracy", "higher_is_better": True}
    return export


def test_worker_runs_max_trials_records_constraints_and_a_rerun_costs_nothing(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls))
    job = _job(tmp_path)
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    for params in warm_starts(Recipe.model_validate(job.base_recipe), job.space):
        study.enqueue_trial(params)
    assert runner.worker_main(job) == 4
    trials = [t for t in open_study(job.storage, job.study_name, "tpe", 0).trials
              if t.state != optuna.trial.TrialState.WAITING]        # queued steps never run
    assert len(trials) == 4 and len(calls) == len({trial_key(job.inputs, r) for r in calls})
    first = trials[0]
    assert first.params["sparsity"] == 0.7 and first.user_attrs["violation"] == 0
    assert first.values == [300.0, 0.01]
    deep = trials[1]                                   # 90% global + cluster 16: misses the drop
    assert deep.user_attrs["violation"] > 0 and deep.user_attrs["failed"] == ["max_accuracy_drop"]
    # the same study again: full, nothing runs; a new study with the same trials: all cached
    assert runner.worker_main(job) == 0
    again = _job(tmp_path)
    again.study_name = "s2"
    study2 = open_study(again.storage, "s2", "tpe", 0)
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            study2.enqueue_trial(t.params)
    before = len(calls)
    again.max_trials = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    runner.worker_main(again)
    assert len(calls) == before
    assert all(t.user_attrs["cached"] for t in open_study(again.storage, "s2", "tpe", 0).trials
               if t.state != optuna.trial.TrialState.WAITING)


def test_worker_queues_the_steps_around_each_new_smallest_trial_that_meets_every_budget(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls, finetune_gain=0.02))
    job = _job(tmp_path, max_trials=6)
    from edgeprune.search import steps
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    start = {**default_params(Recipe.model_validate(job.base_recipe), job.space), "sparsity": 0.75,
             "int8_io": True, "per_tensor": True, "strip": True}
    study.enqueue_trial(start)
    logged: list[str] = []
    runner.worker_main(job, log=logged.append)
    trials = [t for t in open_study(job.storage, job.study_name, "tpe", 0).trials
              if t.state != optuna.trial.TrialState.WAITING]
    # The fake loses sparsity/20 against a budget of 0.04. 75% meets every budget and is the
    # smallest so far: 80% and cluster 32 are queued. 80% is smaller again: its steps are
    # queued, and cluster 32 at 75% is skipped unrun (stale). 85% misses only accuracy and is
    # smaller than the best: queued again with x3 fine-tuning, which takes the excess down by
    # more than a third (0.0625 -> 0.039), so x6 follows.
    assert [(t.state.name, {k: v for k, v in t.params.items() if start.get(k) != v},
             t.user_attrs.get("step_from"), t.user_attrs.get("retry_of")) for t in trials] == [
        ("COMPLETE", {}, None, None),
        ("COMPLETE", {"sparsity": 0.8}, 0, None),
        ("PRUNED", {}, 0, None),
        ("COMPLETE", {"sparsity": 0.85}, 1, None),
        ("COMPLETE", {"sparsity": 0.8, "clusters": 32}, 1, None),
        ("COMPLETE", {"sparsity": 0.85, "finetune": 3}, None, 3),
        ("COMPLETE", {"sparsity": 0.85, "finetune": 6}, None, 5)]
    assert trials[2].user_attrs["skipped"] == "trial 1 is now smaller than trial 0, whose step this was"
    assert steps.counted(study) == 6                       # the skipped trial does not count
    assert sum("one step more compressed are queued next" in line for line in logged) == 2
    assert any("trial 3 misses only the accuracy budget: queued again with x3 fine-tuning" in line
               for line in logged)
    rows = trial_rows(open_study(job.storage, job.study_name, "tpe", 0), True)
    assert [r["number"] for r in rows] == [0, 1, 3, 4, 5, 6]     # the report leaves skipped trials out
    # trial 4 (larger than trial 1) queues nothing; nothing is queued twice
    fixed = [tuple(sorted(t.system_attrs["fixed_params"].items())) for t in trials]
    assert len(fixed) == len(set(fixed))


def test_distillation_is_a_choice_where_the_data_allows_it_and_the_retry_rung_after_longer_finetuning():
    from edgeprune.recipe import DistillSpec
    from edgeprune.search.choices import distilled, longer

    space = space_for(DIGITS_HOST, distill=True)
    assert not space_for(DIGITS_HOST).distill
    assert not space_for(DIGITS_HOST.model_copy(update={"finetune": FinetuneSpec(
        epochs=8, distill=DistillSpec(alpha=0.5))}), distill=True).distill     # the base distils already
    default = default_params(DIGITS_HOST, space)
    assert default["distill"] is False
    assert candidate(DIGITS_HOST, default).recipe.finetune.distill is None
    starts = warm_starts(DIGITS_HOST, space)
    assert starts[1]["distill"] is False and starts[2]["distill"] is False    # asked, not sampled
    deep = suggest(optuna.trial.FixedTrial({**starts[1], "distill": True}), DIGITS_HOST, space)
    assert deep.recipe.finetune.distill == DistillSpec() and "distilled" in deep.label
    plain = {"structure": "none", "clusters": 0, "qat": False, "deploy": "int8.tflite", "int8_io": False,
             "per_tensor": False, "strip": False}
    trial = optuna.trial.FixedTrial(plain)       # nothing fine-tunes: distillation is not asked
    assert suggest(trial, DIGITS_HOST, space).recipe.finetune.distill is None
    assert "distill" not in trial.params
    assert longer(starts[1]) == {**starts[1], "finetune": 6}
    assert distilled(starts[1]) == {**starts[1], "distill": True}
    assert distilled({**starts[1], "distill": True}) is None
    assert distilled(warm_starts(DIGITS_HOST, space_for(DIGITS_HOST))[1]) is None   # not offered


def _run_from_85_percent(tmp_path, max_trials: int, distill: bool = False, **changes):
    """A worker's run whose first trial is the default recipe at 85% sparsity (with
    ``changes`` to its params): that first trial's params, the study's trials and the log."""
    job = _job(tmp_path, max_trials=max_trials, distill=distill)
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    start = {**default_params(Recipe.model_validate(job.base_recipe), job.space), "sparsity": 0.85,
             **changes}
    study.enqueue_trial(start)
    logged: list[str] = []
    runner.worker_main(job, log=logged.append)
    return start, open_study(job.storage, job.study_name, "tpe", 0).trials, logged


def test_a_retry_that_longer_finetuning_did_not_help_is_not_retried_again(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "export_trial", _fake_export([]))        # fine-tuning changes nothing
    start, trials, logged = _run_from_85_percent(tmp_path, max_trials=3)
    assert trials[1].params == {**start, "finetune": 3} and trials[1].user_attrs["retry_of"] == 0
    assert "trial 1: longer fine-tuning took the budgets' excess from 0.0625 to 0.0625, not retried again" \
        in logged
    assert not [t for t in trials if t.user_attrs.get("retry_of") == 1]


def test_a_trial_that_longer_finetuning_does_not_help_is_retried_distilled(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls))     # distillation halves the loss
    start, trials, logged = _run_from_85_percent(tmp_path, max_trials=3, distill=True)
    assert trials[1].params == {**start, "finetune": 3} and trials[1].user_attrs["retry_of"] == 0
    assert trials[2].params == {**start, "finetune": 3, "distill": True}
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].user_attrs["violation"] == 0
    assert "trial 1: longer fine-tuning took the budgets' excess from 0.0625 to 0.0625, queued again " \
        "distilled" in logged
    assert [c.finetune.distill is not None for c in calls] == [False, False, True]


def test_a_trial_at_the_longest_finetuning_is_retried_distilled_and_then_left(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "export_trial", _fake_export([], distill_gain=1.0))   # it changes nothing
    start, trials, logged = _run_from_85_percent(tmp_path, max_trials=3, distill=True, finetune=24)
    assert trials[1].params == {**start, "distill": True} and trials[1].user_attrs["retry_of"] == 0
    assert "trial 0 misses only the accuracy budget: queued again distilled" in logged
    assert "trial 1: distillation took the budgets' excess from 0.0625 to 0.0625, not retried again" \
        in logged
    assert not [t for t in trials if t.user_attrs.get("retry_of") == 1]


def test_worker_records_a_failing_recipe_and_goes_on(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls))
    job = _job(tmp_path, max_trials=2)
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    study.enqueue_trial({"structure": "channel", "channels": 0.3, "clusters": 0, "qat": True,
                         "deploy": "int8.tflite", "int8_io": False})
    runner.worker_main(job)
    trials = open_study(job.storage, job.study_name, "tpe", 0).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[0].user_attrs["error"] == "a combination the fake refuses"
    assert len([t for t in trials if t.state != optuna.trial.TrialState.WAITING]) == 2
    assert json.loads((tmp_path / "trials" / trials[0].user_attrs["key"] / "result.json").read_text())["error"]


def test_epoch_hook_compares_trials_at_the_same_tenth_of_their_phase():
    from edgeprune.search.pruning import epoch_hook

    study = optuna.create_study(directions=["minimize", "minimize"])
    for acc in (0.90, 0.92, 0.94):
        study.add_trial(optuna.trial.create_trial(values=[1.0, 1.0], user_attrs={
            "curve": {"prune:1": acc - 0.3, "prune:5": acc}}))
    trial = study.ask()
    hook = epoch_hook(trial, MedianRule())
    hook("prune", 0, 60, {"val_accuracy": 0.5})          # not the last epoch of a tenth: ignored
    hook("prune", 5, 60, {"val_accuracy": 0.5})          # tenth 1, warm-up: recorded, not stopped
    hook("prune", 29, 60, {"loss": 1.0})                  # nothing watched: ignored
    with pytest.raises(optuna.TrialPruned, match="at 5/10 of prune is more than 0.02 below the median 0.9200"):
        hook("prune", 29, 60, {"val_accuracy": 0.85})    # epoch 30 of 60 = tenth 5 of 10-epoch trials
    assert trial.user_attrs["curve"] == {"prune:1": 0.5, "prune:5": 0.85}
    queued = study.ask()                                  # a step around the best trial: never stopped
    epoch_hook(queued, MedianRule(), judge=False)("prune", 29, 60, {"val_accuracy": 0.5})
    assert queued.user_attrs["curve"] == {"prune:5": 0.5}


def crash_once_worker(job, index, lines):
    """A worker process (spawned: module-level) whose first trial dies by SIGSEGV, as a native
    crash in TensorFlow would; any later worker's trials are the fake export's."""
    import signal

    marker = Path(job.cache_dir).parent / "crashed-once"
    if not marker.exists():
        marker.touch()

        def crash(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGSEGV)
        runner.export_trial = crash
    else:
        runner.export_trial = _fake_export([])
    runner._process_main(job, index, lines)


def test_local_search_survives_a_trial_that_kills_its_process(tmp_path):
    from edgeprune.search.study import open_study

    job = _job(tmp_path, max_trials=3)
    study = open_study(job.storage, job.study_name, job.sampler, 0)
    for params in warm_starts(Recipe.model_validate(job.base_recipe), job.space):
        study.enqueue_trial(params)
    logged: list[str] = []
    runner.run_local(job, 1, logged.append, worker=crash_once_worker)

    trials = open_study(job.storage, job.study_name, "tpe", 0).trials
    assert [t.state.name for t in trials if t.state.name != "WAITING"] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["error"] == "the trial's process died (signal 11, SIGSEGV)"
    assert any("a worker process died (signal 11, SIGSEGV) during trial 0, marked failed; a new worker goes on"
               in line for line in logged), logged
    assert sum("best so far" in line for line in logged) == 2      # progress lines came back


def test_a_rerun_worker_marks_the_trial_its_dead_predecessor_left_running_failed(tmp_path, monkeypatch):
    """What a Ray task rerun after its process died finds: a RUNNING trial of its slot."""
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls))
    job = _job(tmp_path, max_trials=4)               # the two still running count
    job.run = "r1"
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    for slot in ("r1:0", "r1:1", "r0:0"):          # a dead worker's; another live worker's; another search's
        study.ask().set_user_attr("slot", slot)
    logged: list[str] = []
    runner.worker_main(job, 0, log=logged.append)
    trials = open_study(job.storage, job.study_name, "tpe", 0).trials
    assert [t.state.name for t in trials[:3]] == ["FAIL", "RUNNING", "RUNNING"]
    assert trials[0].user_attrs["error"] == "the trial's worker process died"
    assert logged[0] == ("search: trial 0 was left running by a worker whose process died "
                         "(its Ray task is rerun), marked failed")
    # the failed trial and the two running count: one more trial runs, in this worker's slot
    assert trials[3].state.name == "COMPLETE" and trials[3].user_attrs["slot"] == "r1:0"
    assert len(calls) == 1 and all(t.state.name == "WAITING" for t in trials[4:])


def test_a_repeat_of_an_earlier_trial_is_cached_and_not_counted(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls))
    job = _job(tmp_path, max_trials=3)
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    first, second = warm_starts(Recipe.model_validate(job.base_recipe), job.space)[:2]
    for params in (first, first, first, second):       # what a sampler over categories can do
        study.enqueue_trial(params)
    logged: list[str] = []
    runner.worker_main(job, log=logged.append)
    trials = [t for t in open_study(job.storage, job.study_name, "tpe", 0).trials
              if t.state != optuna.trial.TrialState.WAITING]
    assert [t.user_attrs.get("repeat_of") for t in trials[:4]] == [None, 0, 0, None]
    assert all(t.user_attrs["cached"] for t in trials[1:3]) and len(calls) == len(trials) - 2
    # 3 trials counted: the first, the second start and one more; the two repeats are free
    assert len(trials) == 5 and trials[1].values == trials[0].values
    assert any(line.startswith("trial 2 (1/3): ") for line in logged)
    rows = trial_rows(open_study(job.storage, job.study_name, "tpe", 0), True)
    assert [r["repeat_of"] for r in rows[:3]] == [None, 0, 0]


def test_a_study_that_only_repeats_itself_stops_at_max_trials_repeats(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "export_trial", _fake_export(calls))
    job = _job(tmp_path, max_trials=2)
    from edgeprune.search.study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, 0)
    first = warm_starts(Recipe.model_validate(job.base_recipe), job.space)[0]
    for _ in range(6):
        study.enqueue_trial(first)
    runner.worker_main(job)
    done = [t for t in open_study(job.storage, job.study_name, "tpe", 0).trials
            if t.state != optuna.trial.TrialState.WAITING]
    assert len(done) == 3 and len(calls) == 1          # one run, then two repeats end it


def test_table_marks_the_choice_and_counts_queued_steps_skipped_unrun():
    from edgeprune.search.table import render

    row = {"number": 3, "state": "complete", "violation": 0, "gzip_bytes": 2896, "size_ratio": 18.1,
           "cost": 0.009, "metric": 0.975, "metric_drop": 0.0028, "seconds": 23.1, "label": "prune 95%",
           "failed": [], "error": None, "cached": False}
    report = {"verdict": "pass", "target": {"name": "host"}, "deploy": "int8.tflite", "search": {
        "trials": [row], "pareto": {"metric_vs_size": [3], "metric_vs_cost": [3]}, "metric": "accuracy",
        "objectives": ["gzip_bytes (minimise)", "latency_ms (minimise)"], "seconds": 466.0, "skipped": 7,
        "repeats": 2,
        "chosen": {"trial": 3, "label": "prune 95%", "why": "smallest", "reproduce": "edgeprune export"}}}
    text = render(report)
    assert "   3*  meets" in text and "2,896" in text
    assert text.endswith("1 trials in 466 s; 7 queued steps skipped unrun; "
                         "2 repeats of earlier trials, not counted)")
    assert "(repeat of 1)" in render({**report, "search": {**report["search"], "trials": [
        {**row, "cached": True, "repeat_of": 1}]}})


def test_candidates_from_a_channel_then_sparsity_base_carry_then_only_where_asked():
    base = Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.4, then_sparsity=0.9,
                                  max_layer_sparsity=0.92))
    space = space_for(base)
    unstructured = {"structure": "unstructured", "sparsity": 0.8, "scope": "global", "floor": 0.5,
                    "finetune": 1, "clusters": 0, "qat": False, "deploy": "int8.tflite", "int8_io": False,
                    "per_tensor": False, "strip": False}
    assert candidate(base, unstructured).recipe.prune.then_sparsity is None
    channel = {**unstructured, "structure": "channel", "channels": 0.4, "then": 0.0}
    assert candidate(base, channel).recipe.prune.then_sparsity is None
    assert default_params(base, space)["then"] == 0.9
    assert candidate(base, default_params(base, space)).recipe.prune == base.prune
