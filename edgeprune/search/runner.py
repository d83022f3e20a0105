"""Running trials: one worker, N local processes, or Ray tasks, all writing to one study.

A worker loads the study and runs ``study.optimize`` until the study holds
``max_trials`` trials (counting those still running, so N workers stop together) or
its ``timeout`` passes. Each trial is a full ``run_export`` of one candidate recipe,
written as TOML and exported like ``edgeprune export MODEL --target T --recipe FILE
--seed S`` would, validated and judged like any export; its folder is kept in the
trial cache (cache.py), so a trial with the same inputs and recipe is never run twice.

Local workers are processes started with ``spawn`` (TensorFlow does not survive a
fork), one even for ``--workers 1``: a trial that crashes its process is marked failed
and the search goes on. They are not pinned to CPUs: TensorFlow sizes its thread pools by the CPUs a
process may use, and the float sums of fine-tuning, hence the exported bytes, change
with them (measured: the same recipe and seed exported under ``taskset -c 0`` and
unpinned on two cores gave different int8 files). Unpinned, a trial's files are the
bytes a plain ``export`` of its recipe makes on the same machine. Ray workers are Ray
tasks (one CPU each) that read the model and data from the paths given, which must be
the same on every node (a shared disk), and write to the study's storage URL. Ray
reruns a task whose worker process died (``RAY_TASK_RETRIES``); the rerun first marks
the trial its previous attempt left running as failed (``fail_orphans``: every trial
records its ``slot``, the search's run id and the worker's index), as a local worker's
parent does for a dead process.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SearchJob:
    """Everything a worker needs, picklable (sent to processes and Ray tasks)."""

    target: str
    model: str | None
    data: str | None
    metric: str | None
    metric_direction: str | None
    train_epochs: int | None
    base_recipe: dict                  # Recipe.model_dump(mode="python")
    space: object                      # choices.Space
    inputs: dict                       # digests the trial key is made of
    primary: str                       # the task's primary metric
    higher_is_better: bool
    cost_names: tuple[str, ...]
    storage: str
    study_name: str
    sampler: str
    seed: int
    cache_dir: str
    max_trials: int
    timeout: float | None
    prune_rule: object | None          # pruning.MedianRule, or None: never stop a trial early
    env: dict = field(default_factory=dict)   # EDGEPRUNE_* and the like, for remote workers
    run: str = ""                      # this search's id: with a worker's index, its slot


RAY_TASK_RETRIES = 3    # reruns of a Ray task whose worker process died (a native crash)


class TrialFailed(Exception):
    """A trial whose recipe or inputs stopped the export (recorded, the search goes on)."""


def worker_main(job: SearchJob, index: int = 0, log=None) -> int:
    """Run trials until the study has ``job.max_trials`` of them (steps.counted: queued
    steps skipped unrun do not count). Returns trials run here.
    Progress goes to ``log`` (default: stderr, which Ray forwards to the driver)."""
    for key, value in job.env.items():
        os.environ.setdefault(key, value)
    from .steps import StopAt, counted
    from .study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, job.seed + index)
    slot = f"{job.run}:{index}"
    for number in fail_orphans(study, slot):
        (log or _log)(f"search: trial {number} was left running by a worker whose process died "
                      "(its Ray task is rerun), marked failed")
    if counted(study) >= job.max_trials:
        return 0
    ran = []

    def objective(trial):
        ran.append(trial.number)
        trial.set_user_attr("slot", slot)
        return run_trial(trial, job, log or _log)

    study.optimize(objective, timeout=job.timeout, catch=(TrialFailed,), gc_after_trial=True,
                   callbacks=[StopAt(job.max_trials)])
    return len(ran)


def fail_orphans(study, slot: str) -> list[int]:
    """Mark the trials left running in ``slot`` as failed: a worker runs one trial at a
    time, so a running trial of its slot when it starts is one a dead predecessor left."""
    from optuna.trial import TrialState

    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("slot") == slot:
            study._storage.set_trial_user_attr(t._trial_id, "error", "the trial's worker process died")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            lost.append(t.number)
    return lost


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_trial(trial, job: SearchJob, log) -> tuple[float, float]:
    """One trial: the candidate, from the cache or a full export; its objectives."""
    from ..recipe import Recipe
    from . import steps
    from .cache import TrialCache, trial_key
    from .choices import suggest
    from .objective import objectives

    # first: a process that dies in this trial is known by it (run_local marks the trial failed)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    steps.skip_if_stale(trial, log)
    base = Recipe.model_validate(job.base_recipe)
    cand = suggest(trial, base, job.space)
    key = trial_key(job.inputs, cand.recipe)
    trial.set_user_attr("label", cand.label)
    trial.set_user_attr("changes", list(cand.changes))
    trial.set_user_attr("key", key)
    trial.set_user_attr("violation", 1.0)     # until measured: not feasible
    cache = TrialCache(Path(job.cache_dir))
    t0 = time.perf_counter()
    result = cache.get(key)
    cached = result is not None
    if cached:
        steps.mark_repeat(trial, key)
    if result is None:
        result = export_trial(trial, job, cand.recipe, cache.entry(key), log)
        cache.put(key, result)
    trial.set_user_attr("cached", cached)
    trial.set_user_attr("seconds", round(result.get("seconds", 0.0), 1))
    trial.set_user_attr("wall_seconds", round(time.perf_counter() - t0, 1))
    if "error" in result:
        trial.set_user_attr("error", result["error"])
        _progress(trial, job, log, f"error: {result['error']}", cached)
        raise TrialFailed(result["error"])
    for name in ("deploy", "file", "sha256", "size_bytes", "gzip_bytes", "cost_name", "cost", "metric",
                 "baseline_metric", "metric_drop", "budgets", "violation", "failed"):
        trial.set_user_attr(name, result[name])
    values = objectives(result)
    state = "meets every budget" if result["violation"] == 0 else f"misses {', '.join(result['failed'])}"
    _progress(trial, job, log, state + f", {values[0]:.0f} B gzip"
              + (f", {result['cost_name']} {result['cost']:.4g}" if result["cost"] is not None else "")
              + (f", {result['metric_name']} {result['metric']:.4f}" if result["metric"] is not None else ""),
              cached)
    steps.after_trial(trial, job.space, result, values, log)
    return values


def export_trial(trial, job: SearchJob, recipe, entry: Path, log) -> dict:
    """A full export of ``recipe`` into the cache entry; its summary (or the error)."""
    import json
    import shutil

    from ..compress.training import EPOCH_HOOK
    from ..errors import ConfigError, InputError, UnsupportedError
    from ..pipeline import ExportOptions, run_export
    from .objective import summarize
    from .pruning import epoch_hook
    from .recipe_toml import write_recipe

    if entry.exists():
        shutil.rmtree(entry)         # an incomplete entry (a pruned or killed trial)
    entry.mkdir(parents=True)
    path = entry / "recipe.toml"
    write_recipe(recipe, path, header=f"search trial {trial.number} of study {job.study_name}")
    lines: list[str] = []
    queued = "step_from" in trial.user_attrs or "retry_of" in trial.user_attrs
    token = EPOCH_HOOK.set(epoch_hook(trial, job.prune_rule, log, judge=not queued) if job.prune_rule else None)
    t0 = time.perf_counter()
    try:
        result = run_export(ExportOptions(
            target=job.target, out_dir=entry / "out", model=job.model, data=job.data, recipe=path,
            seed=recipe.seed, train_epochs=job.train_epochs, backoff=False, metric=job.metric,
            metric_direction=job.metric_direction, log=lines.append))
        report = json.loads(result.report.to_json())
        out = summarize(report, job.primary, job.cost_names)
        out["folder"] = str(result.out_dir.relative_to(entry))
    except (ConfigError, InputError, UnsupportedError) as exc:
        out = {"error": str(exc).splitlines()[0]}
    finally:
        EPOCH_HOOK.reset(token)
        (entry / "log.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.update(metric_name=job.primary, higher_is_better=job.higher_is_better,
               seconds=time.perf_counter() - t0)
    return out


def _progress(trial, job: SearchJob, log, state: str, cached: bool) -> None:
    from optuna.trial import TrialState

    from .objective import objectives

    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible = [(t.values[0], t.values[1], t.number) for t in done
                if t.user_attrs.get("violation", 1.0) == 0 and t.values]
    if trial.user_attrs.get("violation", 1.0) == 0:        # this trial, not yet marked complete
        feasible.append((*objectives(trial.user_attrs), trial.number))
    best = min(feasible, default=None)
    best_text = (f"best so far: trial {best[2]}, {best[0]:.0f} B gzip"
                 if best is not None else "best so far: none meets every budget")
    from .steps import counted

    log(f"trial {trial.number} ({counted(trial.study)}/{job.max_trials}): {trial.user_attrs.get('label')}: {state}"
        f"{' (cached)' if cached else ''}; {best_text}")


def run_local(job: SearchJob, workers: int, log, worker=None) -> None:
    """``workers`` processes, unpinned (see the module's docstring), even for one: a trial
    that kills its process (a native crash in TensorFlow or a runtime: a search on an MLP
    died once by SIGSEGV, in its 10th trial) is marked failed and a new worker goes on,
    within the search's timeout. Progress lines come back through a queue (the workers'
    own stdout and stderr stay captured like the libraries')."""
    import dataclasses
    import multiprocessing
    import queue as queues

    ctx = multiprocessing.get_context("spawn")
    lines = ctx.Queue()
    target = worker or _process_main
    started = time.monotonic()
    if workers > 1:
        log(f"search: {workers} worker processes on {os.cpu_count()} CPUs")

    def start(index: int, job_now: SearchJob):
        proc = ctx.Process(target=target, args=(job_now, index, lines), daemon=True)
        proc.start()
        return proc

    procs = {i: start(i, job) for i in range(workers)}
    failed: list[int] = []
    restarts = 0
    try:
        while procs:
            try:
                log(lines.get(timeout=0.5))
                continue
            except queues.Empty:
                pass
            for index, proc in list(procs.items()):
                if proc.is_alive():
                    continue
                proc.join()
                del procs[index]
                code = proc.exitcode
                if code is not None and code < 0:            # killed by a signal: the trial's fault
                    lost = _fail_running(job, proc.pid, code)
                    left = None if job.timeout is None else job.timeout - (time.monotonic() - started)
                    log(f"search: a worker process died ({_signal_name(code)})"
                        + (f" during trial {', '.join(str(n) for n in lost)}, marked failed" if lost else "")
                        + ("; a new worker goes on" if (left is None or left > 1) and restarts < job.max_trials
                           else ""))
                    if (left is None or left > 1) and restarts < job.max_trials:
                        restarts += 1
                        procs[index] = start(index, dataclasses.replace(job, timeout=left))
                elif code:
                    failed.append(code)
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    while True:                                              # lines sent just before a worker ended
        try:
            log(lines.get_nowait())
        except queues.Empty:
            break
    if failed:
        from ..errors import EXIT_DEVICE, ConfigError, DeviceError

        if all(code in (2, EXIT_DEVICE) for code in failed):   # an EdgepruneError, sent by the worker
            kind = DeviceError if EXIT_DEVICE in failed else ConfigError
            raise kind(f"{len(failed)} of {workers} search workers stopped (the error is above)",
                       where="--workers", fix="fix what the error names; the study resumes where it stopped")
        raise RuntimeError(f"{len(failed)} search worker(s) failed (exit codes {failed}); see their "
                           "messages above")


def _signal_name(code: int) -> str:
    import signal

    try:
        return f"signal {-code}, {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def _fail_running(job: SearchJob, pid: int, code: int) -> list[int]:
    """Mark the trials a dead worker process left running as failed, saying why."""
    from optuna.trial import TrialState

    from .study import open_study

    study = open_study(job.storage, job.study_name, job.sampler, job.seed)
    mine = f"{socket.gethostname()}:{pid}"
    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") == mine:
            study._storage.set_trial_user_attr(t._trial_id, "error",
                                               f"the trial's process died ({_signal_name(code)})")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            lost.append(t.number)
    return lost


def _process_main(job: SearchJob, index: int, lines=None) -> None:
    """A local worker process: progress lines go to ``lines`` (a queue the parent prints
    from); an EdgepruneError is sent as the CLI prints it, and exits with its code."""
    from ..errors import EdgepruneError

    log = lines.put if lines is not None else None
    try:
        worker_main(job, index, log=log)
    except EdgepruneError as exc:
        (log or _log)(f"error: {exc}")
        sys.exit(exc.exit_code)


def run_ray(job: SearchJob, address: str, workers: int, log) -> None:
    """``workers`` Ray tasks on the cluster at ``address``, one CPU each."""
    from ..errors import ConfigError, DeviceError

    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed", where="--ray",
                          fix="pip install 'edgeprune[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith(("EDGEPRUNE_", "TF_CPP"))}
    try:
        ray.init(address=address, log_to_driver=True, runtime_env={"env_vars": env},
                 logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DeviceError(f"cannot connect to the Ray cluster ({str(exc).splitlines()[0]})",
                          where=f"--ray {address}",
                          fix="start the cluster with Ray's own `ray start` (see docs/search.md), "
                              "or pass the address `ray status` shows") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES)(worker_main)
        log(f"search: {workers} Ray tasks on {address}")
        ray.get([task.remote(job, i) for i in range(workers)])
    except ray.exceptions.RayTaskError as exc:      # the task raised: an EdgepruneError as itself
        from ..errors import EdgepruneError

        if isinstance(exc.cause, EdgepruneError):
            raise exc.cause from None
        raise
    except ray.exceptions.RayError as exc:          # its process died more often than retried
        raise DeviceError(f"a Ray search task stopped: {str(exc).strip().splitlines()[0][:300]}",
                          where=f"--ray {address}",
                          fix="see the Ray worker's log (`ray logs`); the study resumes where it "
                              "stopped when the search is run again") from None
    finally:
        ray.shutdown()
