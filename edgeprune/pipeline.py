"""run_export(): load -> baseline -> compress -> export -> validate -> report.

Each stage is a function over the typed values in types.py; the report is built
only from what the stages return. Every figure in it was measured on an exported
artifact by a runtime (or is labelled an estimate).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import ValidationError

from . import __version__, recipe_sources
from .errors import ConfigError, InputError
from .evaluate import keras_outputs, keras_record
from .finite import check_numbers
from .budgets import judge_budgets
from .measure.artifacts import classifier_task, flat_outputs, validate
from .output import sha256_file, staged_dir
from .preflight import preflight
from .progress import stage
from .recipe import Recipe, load_recipe
from .report.html import render_report
from .report.schema import ArtifactRecord, BudgetVerdict, Report, figure
from .report.summary import data_summary, model_summary, task_notes
from .targets import TargetProfile, load_target
from .tempdirs import run_scoped
from .types import Artifact, CompressedModel, Dataset, SourceModel

@dataclass
class ExportOptions:
    target: str
    out_dir: Path
    model: str | None = None            # file, SavedModel dir or reference name; None: digits
    data: Path | str | Callable | None = None  # .npz, image folders, or a loader MODULE:FUNCTION
    recipe: Path | None = None
    seed: int | None = None
    finetune_epochs: int | None = None  # overrides recipe.finetune.epochs
    train_epochs: int | None = None     # reference models only: training epochs
    emit_c: bool | None = None          # None: the target decides
    c_symbol: str | None = None         # None: the target's firmware.symbol
    arena_headroom: float | None = None # None: the target's firmware.arena_headroom_fraction
    backoff: bool | None = None         # None: back off only for the default recipe
    metric: str | Callable | None = None  # a user metric MODULE:FUNCTION (never from a file)
    metric_direction: str | None = None   # "higher" | "lower" is better, for that metric
    log: Callable[[str], None] = field(default=lambda msg: None)


@dataclass
class ExportResult:
    report: Report
    out_dir: Path
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)   # seconds per stage


# ---------------------------------------------------------------- load

def resolve_inputs(opts: ExportOptions) -> tuple[TargetProfile, SourceModel, Dataset]:
    from . import reference

    name = opts.model or reference.DEFAULT_MODEL
    is_ref = opts.model is None or (reference.is_reference(name) and not Path(name).exists())
    profile = load_target(opts.target)
    recipe = profile.recipe
    if is_ref and reference.recipe_path(name, profile.name):
        recipe = load_recipe(reference.recipe_path(name, profile.name), base=recipe)
    if opts.recipe is not None:
        recipe = load_recipe(opts.recipe, base=recipe)
    updates = {}
    if opts.seed is not None:
        updates["seed"] = opts.seed
    if opts.finetune_epochs is not None:
        updates["finetune"] = recipe.finetune.model_copy(update={"epochs": opts.finetune_epochs})
    recipe = recipe.model_copy(update=updates) if updates else recipe
    profile = _with_recipe(profile, recipe, str(opts.recipe or opts.target))
    from .compress.qat import check_recipe

    check_recipe(profile.recipe)  # a combination tfmot cannot do fails before any work
    preflight(profile, Path(opts.out_dir) / profile.name, opts.log)  # output replaceable, device answers

    from .sources import load_inputs, with_task
    from .tasks.budget import check_budget_metric
    from .tasks.custom import load_metric

    custom = load_metric(opts.metric, opts.metric_direction) if opts.metric is not None else None
    if is_ref:
        if opts.data is not None:
            raise ConfigError("--data cannot be combined with a reference model, which brings its own",
                              where="--data", fix="drop --data, or pass a model file")
        data = reference.load_data(name)
        source = reference.load_model(name, seed=recipe.seed, epochs=opts.train_epochs, log=opts.log)
        data = with_task(source, data, recipe, custom)
    else:
        if opts.data is None:
            raise ConfigError("a model file needs data to fine-tune, calibrate and evaluate it",
                              where="--data", expected="an .npz with x_train, y_train, x_test, y_test, "
                              "a folder of image class folders, or a loader MODULE:FUNCTION",
                              fix="pass --data FILE.npz (or FOLDER, or MODULE:FUNCTION)")
        source, data = load_inputs(name, opts.data, recipe, custom=custom, log=opts.log)
    check_budget_metric(profile.budgets, data.task, f"target {profile.name}")
    if data.num_classes != source.num_classes:
        raise InputError(f"the data has {data.num_classes} classes, the model {source.num_classes} outputs",
                         where=source.origin)
    check_numbers(source.model, data, recipe, where=f"{source.origin} on {data.source}")
    return profile, source, data


def _with_recipe(profile: TargetProfile, recipe: Recipe, where: str) -> TargetProfile:
    try:
        return TargetProfile.model_validate({**{k: getattr(profile, k) for k in TargetProfile.model_fields},
                                             "recipe": recipe})
    except ValidationError as exc:
        why = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()) or str(exc)
        raise ConfigError(f"the recipe does not fit target {profile.name!r}: {why}",
                          where=where, fix="make recipe.deploy a format the target's runtime runs") from None


# ---------------------------------------------------------------- baseline

# ---------------------------------------------------------------- export

def export_artifacts(compressed: CompressedModel, profile: TargetProfile, data: Dataset,
                     source: SourceModel, staging: Path, log,
                     names: list[str] | None = None) -> list[Artifact]:
    """Convert once per precision and format (``names``: only these artifacts)."""
    from .export.onnx import to_onnx_float, to_onnx_int8
    from .export.tflite import to_tflite

    recipe = profile.recipe
    rep = data.representative(recipe.representative_samples)
    artifacts: list[Artifact] = []
    for name in recipe.artifact_names():
        if names is not None and name not in names:
            continue
        precision, fmt = name.split(".")
        t0 = time.perf_counter()
        with stage(f"converting {name}", start=False, done=False):
            if fmt == "tflite":
                art = _export_tflite(compressed, profile, precision, rep, staging, to_tflite, data)
            elif precision == "float32":
                path = staging / "model_float32.onnx"
                settings = to_onnx_float(compressed.model, source.input_shape, path)
                art = _artifact(name, path, "onnx", precision, "dense", "compressed.keras", settings)
            else:
                if not (staging / "model_float32.onnx").exists():
                    to_onnx_float(compressed.model, source.input_shape, staging / "model_float32.onnx")
                path = staging / "model_int8.onnx"
                settings = to_onnx_int8(staging / "model_float32.onnx", path, rep, recipe.onnx_quant)
                art = _artifact(name, path, "onnx", precision, "dense", "float32.onnx", settings)
        log(f"export success {time.perf_counter() - t0:.1f}s, saved as {art.path.name} "
            f"({art.size_bytes / 1024:.1f} KiB)")
        artifacts.append(art)
    if names is not None and "float32.onnx" not in names:
        (staging / "model_float32.onnx").unlink(missing_ok=True)  # made only as int8's parent
    return artifacts


def _artifact(name, path: Path, fmt, precision, encoding, parent, settings) -> Artifact:
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"export of {name} produced no file")  # an invariant: a bug if broken
    return Artifact(name=name, path=path, format=fmt, precision=precision, encoding=encoding,
                    sha256=sha256_file(path), parent=parent, settings=settings)


def _export_tflite(compressed, profile, precision, rep, staging, to_tflite, data) -> Artifact:
    """Convert once; the sparse encoding, if chosen, is this file re-encoded (export/encoding.py)."""
    from .export.encoding import SAMPLES, choose_encoding

    recipe = profile.recipe
    qat = compressed.qat_model is not None and precision == "int8"
    model = compressed.qat_model if qat else compressed.model
    kwargs = dict(representative=rep, int8_io=recipe.int8_io and precision == "int8",
                  quantization_aware=qat, per_channel=recipe.int8_per_channel or precision != "int8")
    dense = to_tflite(model, precision, **kwargs)
    settings = {"converter": "tf.lite.TFLiteConverter", "int8_io": kwargs["int8_io"],
                "quantization_aware": qat, "per_channel": kwargs["per_channel"],
                "representative_samples": int(len(rep)) if precision == "int8" else 0}
    choice = choose_encoding(dense, precision, profile, data.x_test[:SAMPLES], staging)
    settings["encoding_reason"] = choice.reason
    settings["bytes_by_encoding"] = choice.bytes_by_encoding
    if choice.check is not None:
        settings["encoding_check"] = choice.check
    settings["runtime_probe"] = choice.runs
    out = choice.data
    if recipe.tflite_strip:
        from .export.names import strip_tflite

        stripped = strip_tflite(out)
        out = stripped.data
        settings["stripped"] = {"tensor_names": stripped.names, "metadata": list(stripped.metadata),
                                "bytes_saved": stripped.bytes_saved}
    path = staging / f"model_{precision}.tflite"
    path.write_bytes(out)
    return _artifact(f"{precision}.tflite", path, "tflite", precision, choice.encoding,
                     "compressed.keras", settings)


# ---------------------------------------------------------------- the flow

@dataclass
class Outcome:
    """What one recipe gave: compressed model, files, records, budget verdicts."""

    profile: TargetProfile            # with the recipe that made it
    compressed: CompressedModel
    artifacts: list[Artifact]
    records: list[ArtifactRecord]     # baseline, compressed, then each artifact
    budgets: list[BudgetVerdict]
    seconds: dict[str, float]         # "compress", "export" (export, validate, checks)
    backoff: dict | None = None

    @property
    def deploy(self) -> ArtifactRecord:
        return next(r for r in self.records if r.name == self.profile.recipe.deploy)


@dataclass
class Baseline:
    """The source model's record and outputs on the test split (the reference of every check)."""

    record: ArtifactRecord
    outputs: list[np.ndarray]


@run_scoped  # temporary files in one folder, removed on any exit
def run_export(opts: ExportOptions) -> ExportResult:
    from .timing import StageClock

    started = time.perf_counter()
    log = opts.log
    clock = StageClock()
    with clock.stage("load"):
        profile, source, data = resolve_inputs(opts)
    with clock.stage("baseline"):
        outputs = keras_outputs(source.model, data)
        base = Baseline(keras_record("baseline.keras", source.model, data, outputs, None,
                                     {"source": source.origin, "sha256": source.sha256}, outputs), outputs)
    log(f"baseline {data.task.primary} {base.record.measurements[data.task.primary]['value']:.4f} on "
        f"{len(data.x_test)} test samples")
    final = Path(opts.out_dir) / profile.name
    sources = recipe_sources.for_export(opts, profile.recipe, profile.name)
    with staged_dir(final) as staging:
        first_recipe = profile.recipe
        outcome = compress_and_export(profile, source, data, base, staging, log)
        clock.seconds.update(outcome.seconds)
        with clock.stage("back-off", announce=False):
            outcome = back_off(outcome, opts, source, data, base, staging, log)
        profile, recipe, compressed = outcome.profile, outcome.profile.recipe, outcome.compressed
        artifacts, records, deploy = outcome.artifacts, outcome.records, outcome.deploy
        extra_verdicts = []
        if source.bridge is not None and source.bridge.mapped:
            from .sources.writeback import write_back_keras3

            with clock.stage("keras3 write-back"):
                art, rec, verdict = write_back_keras3(source.bridge, compressed, artifacts, data, staging, log)
            artifacts.append(art)
            records.append(rec)
            extra_verdicts.append(verdict)
        emit_c = profile.emit_c if opts.emit_c is None else opts.emit_c
        if emit_c and deploy.measurements.get("integrity", {}).get("passed", True):
            c_art = _firmware(profile, opts, artifacts, deploy, staging, log)
            artifacts.append(c_art)
            records.append(ArtifactRecord(name=c_art.name, file=f"firmware/{c_art.path.name}",
                                          format=c_art.format, precision=c_art.precision,
                                          encoding=c_art.encoding, sha256=c_art.sha256,
                                          parent=c_art.parent, settings=c_art.settings))
        report = Report(
            tool={"name": "edgeprune", "version": __version__},
            target=_target_summary(profile),
            model=model_summary(source, data),
            data=data_summary(data),
            seed=recipe.seed, recipe=recipe.model_dump(mode="json"),
            compression={"sparsity": compressed.sparsity, "clusters": compressed.clusters,
                         "history": compressed.history, "notes": compressed.notes,
                         "steps": compressed.steps, "backoff": outcome.backoff,
                         "recipe_sources": recipe_sources.after_backoff(sources, first_recipe, recipe)},
            artifacts=records, deploy=recipe.deploy, budgets=outcome.budgets + extra_verdicts,
            advice=_notes(profile) + task_notes(profile, data) + _advice(profile, records, staging))
        (staging / "report.json").write_text(report.to_json())
        (staging / "report.html").write_text(render_report(report.to_dict()), encoding="utf-8")
        (staging / "manifest.json").write_text(json.dumps(_manifest(report, artifacts, staging), indent=2) + "\n")
    log(clock.summary())
    return ExportResult(report=report, out_dir=final, seconds=time.perf_counter() - started,
                        stages=dict(clock.seconds))


def compress_and_export(profile: TargetProfile, source: SourceModel, data: Dataset, base: Baseline,
                        staging: Path, log, names: list[str] | None = None) -> Outcome:
    """One recipe, start to verdict: compress (shared between the targets of one run:
    edgeprune/fleet.py), then :func:`export_and_check`."""
    from .fleet import compress

    t0 = time.perf_counter()
    compressed = compress(source, profile.recipe, data, log=log)
    check_numbers(compressed.model, data, profile.recipe, where="the compressed model")
    seconds = time.perf_counter() - t0
    outcome = export_and_check(profile, compressed, source, data, base, staging, log, names)
    outcome.seconds["compress"] = seconds
    return outcome


def export_and_check(profile: TargetProfile, compressed: CompressedModel, source: SourceModel,
                     data: Dataset, base: Baseline, staging: Path, log,
                     names: list[str] | None = None) -> Outcome:
    """Export (``names``: only these artifacts), validate, cross-check every file against
    its parent and its sibling (edgeprune/integrity.py, siblings.py), judge the budgets."""
    from .integrity import cross_check, integrity_verdicts
    from .siblings import sibling_gaps, sibling_tolerance

    t0 = time.perf_counter()
    # Nothing changed the weights (a recipe that only quantizes): the baseline's outputs hold.
    same = compressed.model is source.model or not compressed.steps
    keras_out = base.outputs if same else keras_outputs(compressed.model, data)
    compressed_rec = keras_record("compressed.keras", compressed.model, data, base.outputs,
                                  "baseline.keras", {"steps": compressed.steps}, keras_out)
    artifacts = export_artifacts(compressed, profile, data, source, staging, log, names)
    outputs: dict[str, np.ndarray] = {}
    measurements = validate(artifacts, profile, data, base.outputs, log, outputs)
    _add_sparsity(measurements, artifacts, compressed)
    parents = {"compressed.keras": flat_outputs(keras_out)}
    if compressed.qat_model is not None:
        parents["qat"] = flat_outputs(keras_outputs(compressed.qat_model, data))
    artifacts = cross_check(artifacts, measurements, outputs, parents, staging, log,
                            classifier=classifier_task(data))
    records = [base.record, compressed_rec] + [
        ArtifactRecord(name=a.name, file=str(a.path.relative_to(staging)), format=a.format,
                       precision=a.precision, encoding=a.encoding, sha256=a.sha256, parent=a.parent,
                       settings=a.settings, measurements=measurements[a.name]) for a in artifacts]
    tolerance = sibling_tolerance(profile, data.task)
    if tolerance is not None:
        gaps = sibling_gaps(records, {a.name: a.path for a in artifacts}, data.x_test, data.y_test,
                            *tolerance)
        for name, fig in gaps.items():
            measurements[name]["sibling_gap"] = fig      # flagged ones are shown in the table
    deploy = next(r for r in records if r.name == profile.recipe.deploy)
    budgets = judge_budgets(profile, deploy, base.record, staging / deploy.file, data.task) + \
        integrity_verdicts(deploy.name, deploy.measurements)
    return Outcome(profile, compressed, artifacts, records, budgets,
                   {"compress": 0.0, "export and validate": time.perf_counter() - t0})


def back_off(outcome: Outcome, opts: ExportOptions, source: SourceModel, data: Dataset,
             base: Baseline, staging: Path, log) -> Outcome:
    """When the deployed artifact misses its quality budget (max_accuracy_drop or
    max_metric_drop), try gentler recipes within recipe.backoff's time budget
    (edgeprune/search/) and return the best outcome; every attempt, or why none was
    made, is in ``outcome.backoff``."""
    import shutil
    import tempfile

    from .compress.distill import applies
    from .search.backoff import Trial, back_off as ladder, declined, misses_quality, time_budget
    from .search.space import Candidate, backoff_ladder

    recipe = outcome.profile.recipe
    higher = data.task.direction(data.task.primary) == "higher"
    first = Trial(Candidate("as exported", recipe), outcome.budgets, _metric(outcome, data),
                  sum(outcome.seconds.values()), higher_is_better=higher)
    why = "the quality budget is met or not set" if not misses_quality(first) else declined(
        recipe, recipe_given=opts.recipe is not None or opts.finetune_epochs is not None,
        flag=opts.backoff)
    rungs = backoff_ladder(recipe, distill=applies(data))
    if why is not None:
        outcome.backoff = {"ran": False, "why": why, "would_try": [c.label for c in rungs]
                           if misses_quality(first) else []}
        return outcome
    budget_s, budget, estimate = time_budget(recipe.backoff, outcome.seconds, len(outcome.artifacts))

    def evaluate(cand: Candidate) -> Trial:
        profile = _with_recipe(outcome.profile, cand.recipe, f"back-off {cand.label!r}")
        with tempfile.TemporaryDirectory(dir=staging) as trial_dir:
            trial = compress_and_export(profile, source, data, base, Path(trial_dir), log,
                                        names=[cand.recipe.deploy])
        return Trial(cand, trial.budgets, _metric(trial, data), payload=trial.compressed,
                     higher_is_better=higher)

    log(f"{recipe.deploy} misses its quality budget: backing off within {budget_s:.0f} s ({budget})")
    result = ladder(first, rungs, evaluate, budget_s=budget_s, budget=budget,
                    estimate=estimate, log=log)
    if result.chosen is not first:
        log(f"back-off chose {result.chosen.candidate.label!r}: exporting every artifact with it")
        for entry in list(staging.iterdir()):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        profile = _with_recipe(outcome.profile, result.chosen.candidate.recipe, "back-off")
        outcome = export_and_check(profile, result.chosen.payload, source, data, base, staging, log)
    outcome.backoff = result.to_report()
    return outcome


def _metric(outcome: Outcome, data: Dataset) -> float | None:
    """The deployed artifact's primary task metric."""
    fig = outcome.deploy.measurements.get(data.task.primary)
    return None if fig is None else float(fig["value"])


def _add_sparsity(measurements: dict[str, dict], artifacts: list[Artifact],
                  compressed: CompressedModel) -> None:
    """Per-layer sparsity read back from the weights inside each exported file."""
    from .measure.sparsity import keras_layer_sparsity, onnx_sparsity, tflite_sparsity

    names = list(keras_layer_sparsity(compressed.model))
    for art in artifacts:
        read = tflite_sparsity if art.format == "tflite" else onnx_sparsity
        measurements[art.name]["sparsity"] = figure(
            read(art.path, names), "fraction of zero weights per layer",
            "weights read back from the file (int8: values equal to the zero point)")


def _firmware(profile: TargetProfile, opts: ExportOptions, artifacts: list[Artifact],
              deploy: ArtifactRecord, staging: Path, log) -> Artifact:
    """C sources of the deployed .tflite, with the arena measured on the device (if it ran)."""
    from .export.firmware import firmware_artifact

    if deploy.format != "tflite":
        raise ConfigError(f"C sources are made from a .tflite, but recipe.deploy is {deploy.name!r}",
                          where="--emit-c", fix="deploy a .tflite artifact, or drop --emit-c")
    tflite = next(a for a in artifacts if a.name == deploy.name)
    arena = deploy.measurements.get("arena_bytes", {}).get("value")
    symbol = opts.c_symbol or profile.firmware.symbol
    headroom = profile.firmware.arena_headroom_fraction if opts.arena_headroom is None else opts.arena_headroom
    art = firmware_artifact(tflite, staging / "firmware", symbol=symbol, arena_bytes=arena,
                            headroom_fraction=headroom, alignment=profile.firmware.alignment)
    log(f"export success, saved C sources as firmware/{symbol}.h, firmware/{symbol}.c "
        f"(arena {art.settings['arena_bytes']} bytes)")
    return art


def _advice(profile: TargetProfile, records: list[ArtifactRecord], staging: Path) -> list[str]:
    from .compress.advice import advise

    measurements = {r.name: {**r.measurements, "encoding": r.encoding,
                             "encoding_reason": r.settings.get("encoding_reason"),
                             "runtime_probe": r.settings.get("runtime_probe")} for r in records}
    deployed = next((r for r in records if r.name == profile.recipe.deploy), None)
    if profile.recipe.cluster is not None and deployed is not None and deployed.format == "tflite" \
            and deployed.file:
        from .measure.breakdown import kernel_values_tflite

        measurements[deployed.name]["kernel_values"] = kernel_values_tflite(staging / deployed.file)
    return advise(profile.recipe, profile, measurements)


def _notes(profile: TargetProfile) -> list[str]:
    notes = []
    if profile.device.kind == "rules" and profile.compatibility is not None:
        from .compat import rules_only_note

        notes.append(rules_only_note(profile.compatibility, profile.description.split(":")[0]))
    return notes


def _target_summary(profile: TargetProfile) -> dict:
    from .devices.local import LocalDevice

    return {"name": profile.name, "description": profile.description, "engine": profile.runtime.engine,
            "threads": profile.runtime.threads, "delegate": profile.runtime.delegate,
            "device_kind": profile.device.kind,
            "device": LocalDevice().describe() if profile.device.kind == "local" else
            profile.device.model_dump(mode="json"),
            "budgets": profile.budgets.model_dump(mode="json", exclude_none=True),
            "tolerances": profile.tolerances.model_dump(mode="json")}


def _manifest(report: Report, artifacts: list[Artifact], staging: Path) -> dict:
    """Every file with its path inside the output folder (firmware/ and rejected/ included)."""
    from .report.manifest import checked_manifest

    return checked_manifest({"schema_version": report.schema_version, "target": report.target["name"],
            "deploy": report.deploy,
            "source": {"name": "baseline.keras", "origin": report.model["source"],
                       "sha256": report.model["sha256"]},
            "stages": [{"name": r.name, "file": None, "parent": r.parent, "settings": r.settings}
                       for r in report.artifacts if r.format == "keras" and r.file is None],
            "artifacts": [{"name": a.name, "file": a.path.relative_to(staging).as_posix(), "format": a.format, "precision": a.precision,
                           "encoding": a.encoding, "sha256": a.sha256, "size_bytes": a.size_bytes,
                           "parent": a.parent, "settings": a.settings} for a in artifacts]})
