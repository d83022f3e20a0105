"""run_export(): load -> baseline -> compress -> export -> validate -> report.

Each stage is a function over the typed values in types.py; the report is built
only from what the stages return. Every figure in it was measured on an exported
artifact by a runtime (or is labelled an estimate).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .devices import RunRequest, RunResult, device_for
from .errors import ConfigError, InputError
from .measure.breakdown import breakdown_onnx, breakdown_tflite
from .measure.latency import latency_stats, spread_of
from .measure.metrics import classification_metrics
from .measure.size import sizes
from .output import sha256_file, staged_dir
from .recipe import Recipe, load_recipe
from .report.schema import ArtifactRecord, BudgetVerdict, Report, figure
from .targets import TargetProfile, load_target
from .types import Artifact, CompressedModel, Dataset, SourceModel

HOST_REQUEST = dict(warmup=50, repeats=300, min_time_s=0.0)
DEVICE_REQUESTS = {
    "local": HOST_REQUEST,
    "ssh": HOST_REQUEST,
    "qemu": dict(warmup=2, repeats=5, min_time_s=0.0),
    "tflm": dict(warmup=1, repeats=5, min_time_s=0.0),
}


@dataclass
class ExportOptions:
    target: str
    out_dir: Path
    model: str | None = None            # file, SavedModel dir or reference name; None: digits
    data: Path | None = None
    recipe: Path | None = None
    seed: int | None = None
    finetune_epochs: int | None = None  # overrides recipe.finetune.epochs
    train_epochs: int | None = None     # reference models only: training epochs
    emit_c: bool | None = None          # None: the target decides
    c_symbol: str | None = None         # None: the target's firmware.symbol
    arena_headroom: float | None = None # None: the target's firmware.arena_headroom_fraction
    backoff: bool | None = None         # None: back off only for the default recipe
    log: Callable[[str], None] = field(default=lambda msg: None)


@dataclass
class ExportResult:
    report: Report
    out_dir: Path
    seconds: float


# ---------------------------------------------------------------- load

def resolve_inputs(opts: ExportOptions) -> tuple[TargetProfile, SourceModel, Dataset]:
    from . import reference

    name = opts.model or reference.DEFAULT_MODEL
    is_ref = opts.model is None or (reference.is_reference(name) and not Path(name).exists())
    profile = load_target(opts.target)
    recipe = profile.recipe
    if is_ref and reference.recipe_path(name):
        recipe = load_recipe(reference.recipe_path(name), base=recipe)
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

    if is_ref:
        if opts.data is not None:
            raise ConfigError("--data cannot be combined with a reference model, which brings its own",
                              where="--data", fix="drop --data, or pass a model file")
        data = reference.load_data(name)
        source = reference.load_model(name, seed=recipe.seed, epochs=opts.train_epochs, log=opts.log)
    else:
        if opts.data is None:
            raise ConfigError("a model file needs data to fine-tune, calibrate and evaluate it",
                              where="--data", expected="an .npz with x_train, y_train, x_test, y_test",
                              fix="pass --data FILE.npz")
        from .data import load_npz
        from .source import load_model_file

        source = load_model_file(name)
        data = load_npz(opts.data, input_shape=source.input_shape, num_classes=source.num_classes)
    if data.num_classes != source.num_classes:
        raise InputError(f"the data has {data.num_classes} classes, the model {source.num_classes} outputs",
                         where=source.origin)
    return profile, source, data


def _with_recipe(profile: TargetProfile, recipe: Recipe, where: str) -> TargetProfile:
    try:
        return TargetProfile.model_validate({**{k: getattr(profile, k) for k in TargetProfile.model_fields},
                                             "recipe": recipe})
    except Exception as exc:
        msg = str(exc).splitlines()
        raise ConfigError(f"the recipe does not fit target {profile.name!r}: {msg[-1].strip() if msg else exc}",
                          where=where, fix="make recipe.deploy a format the target's runtime runs") from None


# ---------------------------------------------------------------- baseline

def keras_scores(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


def keras_record(name: str, model, data: Dataset, baseline_top1: np.ndarray | None,
                 parent: str | None, settings: dict, scores: np.ndarray | None = None) -> ArtifactRecord:
    from . import keras_env

    scores = keras_scores(model, data.x_test) if scores is None else scores
    metrics = classification_metrics(scores, data.y_test, data.num_classes, baseline_top1)
    by = f"tf_keras {keras_env.keras().__version__} on local {platform.machine()}"
    meas = {k: figure(v, "fraction", by) for k, v in metrics.items()}
    meas["parameters"] = figure(int(model.count_params()), "count", "tf_keras count_params")
    return ArtifactRecord(name=name, format="keras", precision="float32", parent=parent,
                          settings=settings, measurements=meas)


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
    from .export.encoding import SAMPLES, choose_encoding

    recipe = profile.recipe
    qat = compressed.qat_model is not None and precision == "int8"
    model = compressed.qat_model if qat else compressed.model
    kwargs = dict(representative=rep, int8_io=recipe.int8_io and precision == "int8",
                  quantization_aware=qat)
    dense = to_tflite(model, precision, **kwargs)
    settings = {"converter": "tf.lite.TFLiteConverter", "int8_io": kwargs["int8_io"],
                "quantization_aware": qat,
                "representative_samples": int(len(rep)) if precision == "int8" else 0}
    choice = choose_encoding(dense, precision, profile, data.x_test[:SAMPLES], staging)
    settings["encoding_reason"] = choice.reason
    settings["bytes_by_encoding"] = choice.bytes_by_encoding
    if choice.check is not None:
        settings["encoding_check"] = choice.check
    settings["runtime_probe"] = choice.runs
    path = staging / f"model_{precision}.tflite"
    path.write_bytes(choice.data)
    parent = "compressed.keras"
    return _artifact(f"{precision}.tflite", path, "tflite", precision, choice.encoding, parent, settings)


# ---------------------------------------------------------------- validate

def validate(artifacts: list[Artifact], profile: TargetProfile, data: Dataset,
             baseline_top1: np.ndarray, log, outputs: dict | None = None) -> dict[str, dict]:
    """Measure every artifact on this machine, and the target's own artifacts on its device;
    ``outputs`` (if given) gets each artifact's outputs on this machine, for the cross-checks."""
    from .devices.local import LocalDevice

    host = LocalDevice(profile)
    device = device_for(profile) if profile.device.kind not in ("local", "rules") else None
    target_format = "onnx" if profile.runtime.engine == "onnxruntime" else "tflite"
    results = {}
    for art in artifacts:
        engine = "onnxruntime" if art.format == "onnx" else "litert"
        req = RunRequest(engine=engine, threads=profile.runtime.threads,
                         delegate=profile.runtime.delegate, **HOST_REQUEST)
        host_run = host.run(art.path, data.x_test, req)
        if outputs is not None:
            outputs[art.name] = host_run.outputs
        dev_run = None
        if device is not None and art.format == target_format and _device_runs(profile, art):
            dreq = RunRequest(engine=profile.runtime.engine, threads=profile.runtime.threads,
                              delegate=profile.runtime.delegate, **DEVICE_REQUESTS[profile.device.kind])
            log(f"validating {art.name} on {device.describe()}")
            dev_run = device.run(art.path, data.x_test, dreq)
        results[art.name] = measure(art, profile, data, baseline_top1, host_run, dev_run)
    return results


def _device_runs(profile: TargetProfile, art: Artifact) -> bool:
    # TFLite Micro runs the deployable integer models; hybrid/float16 kernels are not in TFLM.
    return profile.runtime.engine != "tflm" or art.precision in ("int8", "float32")


def measure(art: Artifact, profile: TargetProfile, data: Dataset, baseline_top1: np.ndarray,
            host_run: RunResult, dev_run: RunResult | None) -> dict:
    main = dev_run or host_run
    by = f"{main.runtime} on {main.where}"
    metrics = classification_metrics(main.outputs, data.y_test, data.num_classes, baseline_top1)
    m = {k: figure(v, "fraction", by) for k, v in metrics.items()}
    for key, value in sizes(art.path).items():
        m[key] = figure(value, "bytes", "file size" if key == "size_bytes" else "gzip -9 of the file")
    table = breakdown_tflite(art.path) if art.format == "tflite" else breakdown_onnx(art.path)
    m["breakdown"] = {**table, "method": "measured",
                      "by": "constant tensor bytes and op counts read from the file"}
    if dev_run is not None and dev_run.latency_is_meaningful:
        m["latency_ms"] = figure(unit="ms", by=by, **latency_stats(dev_run.latency_ms),
                                 samples=[round(s, 6) for s in dev_run.latency_ms])
    else:
        note = "" if dev_run is None and profile.device.kind in ("local", "rules") else \
            " (this machine, not the target)"
        m["latency_ms"] = figure(unit="ms", by=f"{host_run.runtime} on {host_run.where}{note}",
                                 **latency_stats(host_run.latency_ms),
                                 samples=[round(s, 6) for s in host_run.latency_ms])
    if dev_run is not None:
        m["host_agreement"] = _agreement(dev_run, host_run, art, profile.runtime.engine)
        if dev_run.instructions_per_invoke:
            counts = dev_run.instructions_per_invoke
            m["instructions_per_invoke"] = figure(int(np.median(counts)), "instructions",
                                                  dev_run.instructions_by or by, samples=counts,
                                                  spread=spread_of(counts))
            cal = profile.calibration
            if cal is not None:
                est = np.median(counts) * cal.cycles_per_instruction / (cal.clock_mhz * 1e3)
                m["latency_estimate_ms"] = figure(
                    float(est), "ms",
                    f"instructions x {cal.cycles_per_instruction} cycles/instruction / "
                    f"{cal.clock_mhz} MHz ({cal.source or 'profile calibration'})", method="estimated")
        if dev_run.arena_bytes is not None:
            m["arena_bytes"] = figure(int(dev_run.arena_bytes), "bytes", by,
                                      note="smallest arena that allocates and invokes, found by trying sizes")
            m["flash_bytes"] = figure(art.size_bytes, "bytes", "model array size",
                                      note="the model only; the interpreter's code is not counted")
    return m


def _agreement(dev: RunResult, host: RunResult, art: Artifact, engine: str) -> dict:
    """The device's outputs against this machine's for the same file, within the tolerance
    stated for the precision (edgeprune/integrity.py); ``passed`` False fails the file."""
    from .integrity import device_check

    return device_check(dev, host, art, engine)


# ---------------------------------------------------------------- budgets

BUDGET_FIGURES = {
    "max_size_bytes": "size_bytes",
    "max_gzip_bytes": "gzip_bytes",
    "max_latency_ms": "latency_ms",
    "max_arena_bytes": "arena_bytes",
    "max_flash_bytes": "flash_bytes",
    "max_instructions_per_invoke": "instructions_per_invoke",
}


def judge_budgets(profile: TargetProfile, deploy: ArtifactRecord, baseline: ArtifactRecord,
                  deploy_path: Path) -> list[BudgetVerdict]:
    out = []
    budgets = profile.budgets
    for name, fig_name in BUDGET_FIGURES.items():
        limit = getattr(budgets, name)
        if limit is None:
            continue
        fig = deploy.measurements.get(fig_name)
        note = ""
        if name == "max_latency_ms" and profile.device.kind == "qemu":
            fig = deploy.measurements.get("latency_estimate_ms")
            note = "estimated from emulated instruction counts"
        elif fig is not None and name == "max_latency_ms" and "not the target" in fig["by"]:
            fig, note = None, "no latency was measured on the target"
        if fig is None:
            out.append(BudgetVerdict(name, fig_name, deploy.name, limit, None, "not_measured",
                                     note or "this target's runner does not measure it"))
            continue
        value = fig["value"]
        out.append(BudgetVerdict(name, fig_name, deploy.name, limit, value,
                                 "pass" if value <= limit else "fail", note))
    if profile.compatibility is not None and deploy.format == "tflite":
        from .compat import check_compatibility

        violations = check_compatibility(deploy_path, profile.compatibility)
        out.append(BudgetVerdict("compatibility", "violations", deploy.name, 0, len(violations),
                                 "fail" if violations else "pass", "; ".join(violations) or
                                 "full int8, I/O types, ops and shapes as the rules require"))
    if budgets.max_accuracy_drop is not None:
        drop = baseline.measurements["accuracy"]["value"] - deploy.measurements["accuracy"]["value"]
        out.append(BudgetVerdict("max_accuracy_drop", "accuracy", deploy.name, budgets.max_accuracy_drop,
                                 round(drop, 6), "pass" if drop <= budgets.max_accuracy_drop else "fail",
                                 "baseline accuracy minus the deployed artifact's, on the test split"))
    return out


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


def run_export(opts: ExportOptions) -> ExportResult:
    started = time.perf_counter()
    log = opts.log
    profile, source, data = resolve_inputs(opts)
    baseline_scores = keras_scores(source.model, data.x_test)
    baseline_top1 = np.argmax(baseline_scores, axis=1)
    baseline = keras_record("baseline.keras", source.model, data, baseline_top1, None,
                            {"source": source.origin, "sha256": source.sha256}, scores=baseline_scores)
    log(f"baseline accuracy {baseline.measurements['accuracy']['value']:.4f} on {len(data.x_test)} "
        f"test samples")
    final = Path(opts.out_dir) / profile.name
    with staged_dir(final) as staging:
        outcome = compress_and_export(profile, source, data, baseline, baseline_top1, staging, log)
        outcome = back_off(outcome, opts, source, data, baseline, baseline_top1, staging, log)
        profile, recipe, compressed = outcome.profile, outcome.profile.recipe, outcome.compressed
        artifacts, records, deploy = outcome.artifacts, outcome.records, outcome.deploy
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
            model={"source": source.origin, "sha256": source.sha256,
                   "input_shape": list(source.input_shape), "num_classes": source.num_classes,
                   "parameters": int(source.model.count_params())},
            data={"source": data.source, "sha256": data.sha256, "train_samples": len(data.x_train),
                  "test_samples": len(data.x_test)},
            seed=recipe.seed, recipe=recipe.model_dump(mode="json"),
            compression={"sparsity": compressed.sparsity, "clusters": compressed.clusters,
                         "history": compressed.history, "notes": compressed.notes,
                         "steps": compressed.steps, "backoff": outcome.backoff},
            artifacts=records, deploy=recipe.deploy, budgets=outcome.budgets,
            advice=_notes(profile) + _advice(profile, records))
        (staging / "report.json").write_text(report.to_json())
        (staging / "manifest.json").write_text(json.dumps(_manifest(report, artifacts), indent=2) + "\n")
    return ExportResult(report=report, out_dir=final, seconds=time.perf_counter() - started)


def compress_and_export(profile: TargetProfile, source: SourceModel, data: Dataset,
                        baseline: ArtifactRecord, baseline_top1: np.ndarray, staging: Path, log,
                        names: list[str] | None = None) -> Outcome:
    """One recipe, start to verdict: compress, then :func:`export_and_check`."""
    from .compress import compress

    t0 = time.perf_counter()
    compressed = compress(source, profile.recipe, data, log=log)
    seconds = time.perf_counter() - t0
    outcome = export_and_check(profile, compressed, source, data, baseline, baseline_top1, staging,
                               log, names)
    outcome.seconds["compress"] = seconds
    return outcome


def export_and_check(profile: TargetProfile, compressed: CompressedModel, source: SourceModel,
                     data: Dataset, baseline: ArtifactRecord, baseline_top1: np.ndarray,
                     staging: Path, log, names: list[str] | None = None) -> Outcome:
    """Export (``names``: only these artifacts), validate, cross-check every file against
    its parent and its sibling (edgeprune/integrity.py, siblings.py), judge the budgets."""
    from .integrity import cross_check, integrity_verdicts
    from .siblings import sibling_gaps, sibling_tolerance

    t0 = time.perf_counter()
    scores = keras_scores(compressed.model, data.x_test)
    compressed_rec = keras_record("compressed.keras", compressed.model, data, baseline_top1,
                                  "baseline.keras", {"steps": compressed.steps}, scores=scores)
    artifacts = export_artifacts(compressed, profile, data, source, staging, log, names)
    outputs: dict[str, np.ndarray] = {}
    measurements = validate(artifacts, profile, data, baseline_top1, log, outputs)
    _add_sparsity(measurements, artifacts, compressed)
    parents = {"compressed.keras": scores}
    if compressed.qat_model is not None:
        parents["qat"] = keras_scores(compressed.qat_model, data.x_test)
    artifacts = cross_check(artifacts, measurements, outputs, parents, staging, log)
    records = [baseline, compressed_rec] + [
        ArtifactRecord(name=a.name, file=str(a.path.relative_to(staging)), format=a.format,
                       precision=a.precision, encoding=a.encoding, sha256=a.sha256, parent=a.parent,
                       settings=a.settings, measurements=measurements[a.name]) for a in artifacts]
    gaps = sibling_gaps(records, {a.name: a.path for a in artifacts}, data.x_test, data.y_test,
                        *sibling_tolerance(profile))
    for name, fig in gaps.items():
        measurements[name]["sibling_gap"] = fig      # flagged ones are shown in the table
    deploy = next(r for r in records if r.name == profile.recipe.deploy)
    budgets = judge_budgets(profile, deploy, baseline, staging / deploy.file) + \
        integrity_verdicts(deploy.name, deploy.measurements)
    return Outcome(profile, compressed, artifacts, records, budgets,
                   {"compress": 0.0, "export": time.perf_counter() - t0})


def back_off(outcome: Outcome, opts: ExportOptions, source: SourceModel, data: Dataset,
             baseline: ArtifactRecord, baseline_top1: np.ndarray, staging: Path, log) -> Outcome:
    """When the deployed artifact misses max_accuracy_drop, try gentler recipes within
    recipe.backoff's time budget (edgeprune/search/) and return the best outcome; every
    attempt, or why none was made, is in ``outcome.backoff``."""
    import shutil
    import tempfile

    from .search.backoff import Trial, back_off as ladder, declined, misses_accuracy, time_budget
    from .search.space import Candidate, backoff_ladder

    recipe = outcome.profile.recipe
    first = Trial(Candidate("as exported", recipe), outcome.budgets, _metric(outcome),
                  sum(outcome.seconds.values()))
    why = "max_accuracy_drop met or not set" if not misses_accuracy(first) else declined(
        recipe, recipe_given=opts.recipe is not None or opts.finetune_epochs is not None,
        flag=opts.backoff)
    if why is not None:
        outcome.backoff = {"ran": False, "why": why, "would_try": [c.label for c in backoff_ladder(recipe)]
                           if misses_accuracy(first) else []}
        return outcome
    budget_s, budget, estimate = time_budget(recipe.backoff, outcome.seconds, len(outcome.artifacts))

    def evaluate(cand: Candidate) -> Trial:
        profile = _with_recipe(outcome.profile, cand.recipe, f"back-off {cand.label!r}")
        with tempfile.TemporaryDirectory(dir=staging) as trial_dir:
            trial = compress_and_export(profile, source, data, baseline, baseline_top1, Path(trial_dir),
                                        log, names=[cand.recipe.deploy])
        return Trial(cand, trial.budgets, _metric(trial), payload=trial.compressed)

    log(f"{recipe.deploy} misses max_accuracy_drop: backing off within {budget_s:.0f} s ({budget})")
    result = ladder(first, backoff_ladder(recipe), evaluate, budget_s=budget_s, budget=budget,
                    estimate=estimate, log=log)
    if result.chosen is not first:
        log(f"back-off chose {result.chosen.candidate.label!r}: exporting every artifact with it")
        for entry in list(staging.iterdir()):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        profile = _with_recipe(outcome.profile, result.chosen.candidate.recipe, "back-off")
        outcome = export_and_check(profile, result.chosen.payload, source, data, baseline,
                                   baseline_top1, staging, log)
    outcome.backoff = result.to_report()
    return outcome


def _metric(outcome: Outcome) -> float | None:
    fig = outcome.deploy.measurements.get("accuracy")
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


def _advice(profile: TargetProfile, records: list[ArtifactRecord]) -> list[str]:
    from .compress.advice import advise

    return advise(profile.recipe, profile,
                  {r.name: {**r.measurements, "encoding": r.encoding,
                            "encoding_reason": r.settings.get("encoding_reason"),
                            "runtime_probe": r.settings.get("runtime_probe")} for r in records})


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


def _manifest(report: Report, artifacts: list[Artifact]) -> dict:
    return {"schema_version": report.schema_version, "target": report.target["name"],
            "deploy": report.deploy,
            "source": {"name": "baseline.keras", "origin": report.model["source"],
                       "sha256": report.model["sha256"]},
            "stages": [{"name": r.name, "file": None, "parent": r.parent, "settings": r.settings}
                       for r in report.artifacts if r.format == "keras"],
            "artifacts": [{"name": a.name, "file": str(a.path.relative_to(a.path.parent.parent))
                           if a.format == "c_array" else a.path.name, "format": a.format, "precision": a.precision,
                           "encoding": a.encoding, "sha256": a.sha256, "size_bytes": a.size_bytes,
                           "parent": a.parent, "settings": a.settings} for a in artifacts]}
