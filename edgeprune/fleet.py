"""One export for several targets: compress once per distinct recipe, validate per target.

``edgeprune export MODEL --target host --target rpi4 --target cortex-m4`` runs the
usual export once per target (each writes ``OUT/<target>/`` exactly as a single run
does), while :func:`compress` hands every target whose compression settings are the
same (seed, prune, finetune, regularize, cluster, qat, task, data) the model the first
one trained: the same seed gives the same weights, so training again would only cost
time. Then ``OUT/summary.json``, ``OUT/summary.html`` and a table compare the targets side
by side.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import EXIT_BUDGET, EXIT_OK, ConfigError, EdgepruneError

# The Recipe fields compress() reads (edgeprune/compress/); the others shape export only.
COMPRESSION_FIELDS = ("seed", "prune", "finetune", "regularize", "cluster", "qat", "task", "data")

_cache: dict[tuple, object] | None = None


@contextmanager
def shared_compression() -> Iterator[dict]:
    """While active, :func:`compress` reuses a compressed model for equal settings."""
    global _cache
    previous, _cache = _cache, {}
    try:
        yield _cache
    finally:
        _cache = previous


def compression_key(source, recipe, data) -> tuple:
    return (source.sha256, data.sha256,
            json.dumps(recipe.model_dump(mode="json", include=set(COMPRESSION_FIELDS)), sort_keys=True))


def compress(source, recipe, data, log=lambda msg: None):
    """edgeprune.compress.compress, shared between the targets of one run."""
    from .compress import compress as compress_model
    from .compress.qat import check_recipe

    if _cache is None:
        return compress_model(source, recipe, data, log=log)
    key = compression_key(source, recipe, data)
    if key in _cache:
        check_recipe(recipe)
        log("compression: the same settings as an earlier target in this run; reusing its model")
        return dataclasses.replace(_cache[key], recipe=recipe)
    _cache[key] = compress_model(source, recipe, data, log=log)
    return _cache[key]


@dataclass
class TargetOutcome:
    target: str
    exit_code: int
    result: object | None = None          # pipeline.ExportResult
    error: str | None = None
    exception: BaseException | None = None


@dataclass
class FleetResult:
    outcomes: list[TargetOutcome] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    summary_path: Path | None = None

    @property
    def exit_code(self) -> int:
        """The worst of the targets (errors 2 and 4 above a missed budget, 3)."""
        return max((o.exit_code for o in self.outcomes), default=EXIT_OK)


def run_targets(opts, targets: list[str], log=lambda msg: None) -> FleetResult:
    """Export for each target in turn; a target that fails with an EdgepruneError does not
    stop the others (its error is in the summary). ``opts``: pipeline.ExportOptions."""
    from .pipeline import run_export
    from .targets import load_target

    names = [load_target(t).name for t in targets]      # an unknown target fails before any work
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"target {dupes[0]!r} is named twice; each target writes OUT/<target>/",
                          where="--target", fix="name each target once")
    fleet = FleetResult()
    with shared_compression():
        for n, (target, name) in enumerate(zip(targets, names), 1):
            log(f"target {name} ({n} of {len(targets)})")
            try:
                result = run_export(dataclasses.replace(opts, target=target))
                code = EXIT_OK if result.report.verdict == "pass" else EXIT_BUDGET
                fleet.outcomes.append(TargetOutcome(name, code, result))
            except EdgepruneError as exc:
                log(f"target {name}: error: {str(exc).splitlines()[0]}")
                fleet.outcomes.append(TargetOutcome(name, exc.exit_code, error=str(exc), exception=exc))
    fleet.summary = summarize(fleet.outcomes)
    fleet.summary_path = Path(opts.out_dir) / "summary.json"
    from .output import write_atomic
    from .report.html import render_comparison

    write_atomic(fleet.summary_path, (json.dumps(fleet.summary, indent=2) + "\n").encode())
    reports = {o.target: o.result.report.to_dict() for o in fleet.outcomes if o.result is not None}
    if reports:   # the targets side by side, beside summary.json
        write_atomic(fleet.summary_path.with_suffix(".html"), render_comparison(reports).encode())
    return fleet


def summarize(outcomes: list[TargetOutcome]) -> dict:
    """``{"targets": {name: {...}}, "verdict", "exit_code"}`` for OUT/summary.json."""
    targets = {}
    for o in outcomes:
        if o.result is None:
            targets[o.target] = {"verdict": "error", "exit_code": o.exit_code, "error": o.error}
            continue
        report = o.result.report.to_dict()
        deploy = next(a for a in report["artifacts"] if a["name"] == report["deploy"])
        m = deploy["measurements"]
        primary = report["model"]["task"].get("primary", "accuracy")
        figures = {key: m[key]["value"] for key in ("size_bytes", "gzip_bytes", "latency_ms", "host_latency_ms",
                                                   "latency_estimate_ms", "instructions_per_invoke",
                                                   "arena_bytes", "flash_bytes", "ram_bytes") if key in m}
        if primary in m:
            figures[primary] = m[primary]["value"]
        targets[o.target] = {
            "verdict": report["verdict"], "exit_code": o.exit_code, "deploy": report["deploy"],
            "report": str(o.result.out_dir / "report.json"), "out_dir": str(o.result.out_dir),
            "primary_metric": primary, "figures": figures,
            "budgets": [{"name": b["name"], "limit": b["limit"], "value": b["value"], "verdict": b["verdict"]}
                        for b in report["budgets"]],
            "seconds": round(o.result.seconds, 1)}
    worst = max((o.exit_code for o in outcomes), default=EXIT_OK)
    verdict = "pass" if worst == EXIT_OK else "fail" if worst == EXIT_BUDGET else "error"
    return {"targets": targets, "verdict": verdict, "exit_code": worst}
