"""``edgeprune search``: find the recipe whose deployed artifact meets every budget of a
target and is the smallest (then the cheapest to run), and write its export.

1. The inputs are read and checked once, like ``export`` does (nothing runs on bad input).
2. The study (study.py) is opened or resumed; on a new study the default recipe, a deep
   prune + cluster recipe and channel pruning by half are enqueued as the first trials
   (warm starts), then the sampler proposes the rest (choices.py).
3. Workers (runner.py) run the trials, each a full export cached by its inputs and recipe.
4. The chosen trial is the first by objective.rank_key among those meeting every budget;
   its export folder is copied into ``OUT/TARGET/`` through the same atomic swap an
   export uses, with ``recipe.toml`` (which ``export --recipe`` turns into the same
   deployed bytes) and a ``search`` section in report.json: every trial, the Pareto
   fronts of the task metric against size and against target cost, the choice and why.

No trial meeting every budget is a ConfigError naming the budgets no trial met.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import ConfigError
from ..tempdirs import run_scoped


@dataclass
class SearchOptions:
    target: str
    out_dir: Path
    model: str | None = None
    data: str | None = None
    recipe: Path | None = None
    seed: int | None = None
    finetune_epochs: int | None = None
    train_epochs: int | None = None
    metric: str | None = None
    metric_direction: str | None = None
    max_trials: int = 20
    timeout: float | None = None
    workers: int = 1
    ray: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    deploys: tuple[str, ...] | None = None
    prune_trials: bool = True
    log: Callable[[str], None] = field(default=lambda msg: None)


@dataclass
class SearchResult:
    report: dict
    out_dir: Path
    seconds: float
    chosen: dict


@run_scoped
def run_search(opts: SearchOptions) -> SearchResult:
    import os

    from ..compress.distill import applies as distill_applies
    from ..pipeline import ExportOptions, resolve_inputs
    from .cache import inputs_digest
    from .choices import space_for
    from .objective import COST_FIGURES
    from .pruning import MedianRule
    from .runner import SearchJob, run_local, run_ray
    from .steps import SKIPPED
    from .study import default_storage, fail_stale, open_study

    started = time.perf_counter()
    if opts.data is not None and not isinstance(opts.data, str):
        raise ConfigError("the search's workers read the data from a path or MODULE:FUNCTION",
                          where="data", fix="pass the data as a path or MODULE:FUNCTION string")
    profile, source, data = resolve_inputs(ExportOptions(
        target=opts.target, out_dir=opts.out_dir, model=opts.model, data=opts.data, recipe=opts.recipe,
        seed=opts.seed, finetune_epochs=opts.finetune_epochs, train_epochs=opts.train_epochs,
        metric=opts.metric, metric_direction=opts.metric_direction, log=opts.log))
    base = profile.recipe
    fmt = profile.deploy_format()
    runnable = tuple(n for n in base.artifact_names() if n.endswith(f".{fmt}"))
    space = space_for(base, opts.deploys or tuple(n for n in runnable if not n.startswith("float32.")) or None,
                      distill=distill_applies(data))
    unknown = [d for d in space.deploys if d not in runnable]
    if unknown:
        raise ConfigError(f"--deploy names {', '.join(unknown)}, which the recipe does not make or "
                          f"target {profile.name!r} cannot run ({profile.runtime.engine} runs .{fmt} files)",
                          where="--deploy", expected=", ".join(runnable),
                          fix="name artifacts the target's recipe makes and its runtime runs")
    target_info = profile.model_dump(mode="json", exclude={"recipe"})
    inputs = {"model": source.sha256, "data": data.sha256, "target": target_info,
              "train_epochs": opts.train_epochs, "metric": opts.metric,
              "metric_direction": opts.metric_direction, "edgeprune": __version__}
    primary = data.task.primary
    higher = data.task.direction(primary) == "higher"
    folder = Path(opts.out_dir) / f"{profile.name}.search"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the search's folder ({exc.strerror})", where=str(folder),
                          fix="choose a writable --out directory") from None
    url = opts.storage or default_storage(folder)
    study_name = f"{profile.name}-" + inputs_digest({"inputs": inputs, "base": base.model_dump(mode="json"),
                                                     "space": repr(space), "sampler": opts.sampler})[:16]
    job = SearchJob(
        target=opts.target, model=opts.model, data=opts.data, metric=opts.metric,
        metric_direction=opts.metric_direction, train_epochs=opts.train_epochs,
        base_recipe=base.model_dump(mode="python"), space=space, inputs=inputs, primary=primary,
        higher_is_better=higher, cost_names=COST_FIGURES.get(profile.device.kind, ("latency_ms",)),
        storage=url, study_name=study_name, sampler=opts.sampler, seed=base.seed,
        cache_dir=str((folder / "trials").resolve()), max_trials=opts.max_trials, timeout=opts.timeout,
        prune_rule=MedianRule() if opts.prune_trials else None,
        env={k: v for k, v in os.environ.items() if k.startswith(("EDGEPRUNE_", "TF_CPP"))},
        run=uuid.uuid4().hex[:12])
    study = open_study(url, study_name, opts.sampler, base.seed)
    if opts.storage is None and fail_stale(study):
        opts.log("search: trials left running by an interrupted search are marked failed")
    if not study.trials:
        for params in warm_starts(base, space)[:opts.max_trials]:
            study.enqueue_trial(params)
    else:
        opts.log(f"search: resuming study {study_name} ({len(study.trials)} trials so far)")
    float_gzip = _float_gzip(source)
    opts.log(f"search: up to {opts.max_trials} trials"
             + (f" within {opts.timeout:g} s" if opts.timeout else "")
             + f"; study {study_name} in {_shown(url)}; objectives: deployed gzip bytes, "
               f"{' or '.join(job.cost_names)}; constraint: every budget of {profile.name}")
    if opts.ray:
        run_ray(job, opts.ray, max(opts.workers, 1), opts.log)
    else:
        run_local(job, opts.workers, opts.log)
    done_study = open_study(url, study_name, opts.sampler, base.seed)
    rows = trial_rows(done_study, higher)
    chosen = choose(rows, profile.name)
    section = search_section(rows, chosen, job, opts, float_gzip, url, time.perf_counter() - started)
    section["skipped"] = sum(1 for t in done_study.get_trials(deepcopy=False) if SKIPPED in t.user_attrs)
    section["repeats"] = sum(1 for r in rows if r.get("repeat_of") is not None)
    final = write_output(chosen, job, profile.name, Path(opts.out_dir), section)
    report = json.loads((final / "report.json").read_text(encoding="utf-8"))
    return SearchResult(report, final, time.perf_counter() - started, chosen)


def warm_starts(base, space) -> list[dict]:
    """The default recipe (when the space holds it), a deep prune + cluster recipe,
    channel pruning by half, and channel pruning followed by deep sparsity and clusters."""
    from .choices import default_params

    starts = []
    default = default_params(base, space)
    if default is not None:
        starts.append(default)
    # Deep: the best of the reference model's searches (docs/search.md), with x3 fine-tuning
    # (x6 takes twice as long; when it misses only accuracy it is retried with x6, steps.py).
    deep = {"structure": "unstructured", "sparsity": 0.95, "scope": "global", "floor": 0.7,
            "finetune": 3, "clusters": 16, "qat": False, "deploy": space.deploys[0]}
    if space.int8_io and deep["deploy"] == "int8.tflite":
        deep["int8_io"] = False
    if deep["deploy"] == "int8.tflite":
        deep["per_tensor"] = True
    if space.strip and deep["deploy"].endswith(".tflite"):
        deep["strip"] = True        # costs no accuracy: only the names in its report
    if space.distill:
        deep["distill"] = False     # a retry's lever (choices.distilled): it cost the digits CNN accuracy
    if deep != default:
        starts.append(deep)
    # Channel pruning: the one step that shrinks a dense file (a microcontroller's flash,
    # a runtime without sparse kernels) and its compute.
    channel = {"structure": "channel", "channels": 0.5, "then": 0.0, "finetune": 1, "clusters": 0, "qat": False,
               "deploy": space.deploys[0], **({"int8_io": False} if "int8_io" in deep else {}),
               **({"per_tensor": False} if "per_tensor" in deep else {}),
               **({"strip": False} if "strip" in deep else {}),
               **({"distill": False} if space.distill else {})}
    if channel != default:
        starts.append(channel)
    # Channels and then sparsity: the graph shrinks (biases, depthwise kernels and the file's
    # tables with it, which no unstructured pruning reaches) and what remains is pruned and
    # clustered. On the DS-CNN, channels -30% then 90% with 8 clusters was 6,950 B gzip (48
    # epochs, distilled), 95% per-layer unstructured pruning 8,659 B (96 epochs, distilled).
    sparse_channel = {**channel, "channels": 0.3, "then": 0.9, "finetune": 3, "clusters": 8,
                      **({"per_tensor": True} if "per_tensor" in deep else {}),
                      **({"strip": True} if "strip" in deep else {})}
    if sparse_channel != default:
        starts.append(sparse_channel)
    return starts


def trial_rows(study, higher: bool) -> list[dict]:
    from .steps import REPEAT, SKIPPED

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "WAITING" or SKIPPED in t.user_attrs:   # queued, never run (steps.py)
            continue
        a = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name.lower(), "label": a.get("label"),
                     "changes": a.get("changes", []), "key": a.get("key"), "cached": a.get("cached"),
                     "worker": a.get("worker"), "step_from": a.get("step_from"), "retry_of": a.get("retry_of"),
                     "repeat_of": a.get(REPEAT),
                     "seconds": a.get("seconds"), "deploy": a.get("deploy"),
                     "size_bytes": a.get("size_bytes"), "gzip_bytes": a.get("gzip_bytes"),
                     "cost_name": a.get("cost_name"), "cost": a.get("cost"), "metric": a.get("metric"),
                     "baseline_metric": a.get("baseline_metric"), "metric_drop": a.get("metric_drop"),
                     "violation": a.get("violation", 1.0) if t.state.name == "COMPLETE" else None,
                     "failed": a.get("failed", []), "budgets": a.get("budgets"), "error": a.get("error"),
                     "sha256": a.get("sha256"), "params": dict(t.params), "higher_is_better": higher})
    return rows


def choose(rows: list[dict], target: str) -> dict:
    from .objective import rank_key

    done = [r for r in rows if r["state"] == "complete"]
    meets = [r for r in done if r["violation"] == 0]
    if meets:
        return min(meets, key=rank_key)
    if not done:
        raise ConfigError(f"no trial of the search finished ({len(rows)} started: "
                          f"{_states(rows)})", where=f"search on target {target}",
                          fix="see the trials' errors above; raise --max-trials or --timeout")
    names = sorted({n for r in done for n in r["failed"]} - {n for r in done for n in _passed(r)})
    detail = "; ".join(_closest(n, done) for n in names) or "no trial meets them all at once"
    raise ConfigError(
        f"none of the {len(done)} recipes tried meets every budget of target {target!r}: {detail}",
        where=f"target {target}: budgets {', '.join(names) or 'together'}",
        expected="a recipe within every budget",
        fix="raise --max-trials or --timeout to try more recipes, relax the budget in a copy of the "
            "target profile (--target FILE.toml), or start from a smaller model")


def _passed(row: dict) -> list[str]:
    return [b["name"] for b in row.get("budgets") or [] if b["verdict"] == "pass"]


def _closest(name: str, done: list[dict]) -> str:
    values = [(b["value"], b["limit"], r["number"]) for r in done for b in r.get("budgets") or []
              if b["name"] == name and isinstance(b["value"], (int, float))]
    if not values:
        return f"{name}: not measured in any trial"
    value, limit, number = min(values)
    return f"{name}: the lowest value tried is {value:,.6g} (limit {limit:,.6g}, trial {number})"


def _states(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _float_gzip(source) -> int | None:
    """gzip -9 bytes of the source model converted to float32 TFLite (the size ratios' base)."""
    from ..export.tflite import to_tflite
    from ..measure.size import gzip_size

    try:
        return gzip_size(to_tflite(source.model, "float32"))
    except Exception:       # a model the converter refuses: ratios are then left out
        return None


def _shown(url: str) -> str:
    from .study import redact

    return redact(url)


def search_section(rows, chosen, job, opts, float_gzip, url, seconds) -> dict:
    from .objective import pareto
    from .pruning import MedianRule

    done = [r for r in rows if r["state"] == "complete"]
    for r in rows:
        gz = r.get("gzip_bytes")
        r["size_ratio"] = round(float_gzip / gz, 2) if float_gzip and gz else None
    default = next((r for r in rows if r["number"] == 0), None)
    why = (f"meets every budget; smallest deployed file ({chosen['gzip_bytes']:,} B gzip) among the "
           f"{sum(1 for r in done if r['violation'] == 0)} trials that do"
           + (f", then lowest {chosen['cost_name']}" if chosen.get("cost_name") else ""))
    return {
        "engine": f"ray {opts.ray}" if opts.ray else "local processes",
        "workers": opts.workers, "sampler": opts.sampler, "storage": _shown(url),
        "study": job.study_name, "max_trials": opts.max_trials, "timeout_s": opts.timeout,
        "metric": job.primary,
        "objectives": ["gzip_bytes (minimise)", f"{'/'.join(job.cost_names)} (minimise)"],
        "constraint": "every budget of the target (sum of relative excesses = 0)",
        "pruning": job.prune_rule.describe() if isinstance(job.prune_rule, MedianRule) else "off",
        "float32_gzip_bytes": figure_float(float_gzip),
        "seconds": round(seconds, 1),
        "trials": rows,
        "pareto": {"metric_vs_size": pareto(done, "size", job.higher_is_better),
                   "metric_vs_cost": pareto(done, "cost", job.higher_is_better)},
        "default": None if default is None or default["label"] is None else {
            "trial": 0, "label": default["label"], "state": default["state"],
            "gzip_bytes": default["gzip_bytes"], "failed": default["failed"]},
        "chosen": {"trial": chosen["number"], "label": chosen["label"], "changes": chosen["changes"],
                   "why": why, "recipe_file": "recipe.toml", "reproduce": reproduce(job, opts)},
    }


def figure_float(value):
    from ..report.schema import figure

    return None if value is None else figure(
        value, "bytes", "gzip -9 of the source model converted to float32 TFLite")


def reproduce(job, opts) -> str:
    parts = ["edgeprune", "export"] + ([opts.model] if opts.model else []) + ["--target", opts.target]
    if opts.data:
        parts += ["--data", str(opts.data)]
    parts += ["--recipe", "OUT/TARGET/recipe.toml", "--seed", str(job.seed)]
    if opts.train_epochs:
        parts += ["--train-epochs", str(opts.train_epochs)]
    if opts.metric:
        parts += ["--metric", opts.metric] + (["--metric-direction", opts.metric_direction]
                                              if opts.metric_direction else [])
    return " ".join(parts)


def write_output(chosen: dict, job, target_name: str, out_dir: Path, section: dict) -> Path:
    """The chosen trial's export folder, recipe.toml and the search section, swapped in atomically."""
    from ..output import staged_dir
    from ..recipe import load_recipe
    from .cache import TrialCache
    from .recipe_toml import write_recipe

    entry = TrialCache(Path(job.cache_dir)).entry(chosen["key"])
    source = entry / "out" / target_name
    recipe = load_recipe(entry / "recipe.toml")
    final = out_dir / target_name
    section["chosen"]["reproduce"] = section["chosen"]["reproduce"].replace(
        "OUT/TARGET/recipe.toml", str(final / "recipe.toml"))
    with staged_dir(final) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        write_recipe(recipe, staging / "recipe.toml", header=(
            f"Chosen by `edgeprune search` (trial {chosen['number']}: {chosen['label']}).\n"
            f"Reproduce: {section['chosen']['reproduce']}"))
        report = json.loads((staging / "report.json").read_text(encoding="utf-8"))
        report["search"] = section
        (staging / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return final
