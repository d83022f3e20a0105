"""``edgeprune validate``: the validation, budgets, report, ``check`` compatibility rules and
firmware output for a ``.tflite`` or ``.onnx`` file made elsewhere.

Nothing is compressed or converted: the file is copied into ``OUT/TARGET/`` and measured
on the target like an exported artifact, with the task's metrics on the test split. A
quality budget (``max_accuracy_drop``, ``max_metric_drop``) needs the model before
compression, ``--reference MODEL`` (a Keras file, .tflite or .onnx), whose outputs on the
same test split give the baseline; without it those budgets are ``not_measured``. The
report says the artifact was made elsewhere (``model.external``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ConfigError, InputError

EXTERNAL_NOTE = ("{name} was made elsewhere ({origin}); edgeprune validated it as it is and "
                 "compressed nothing")


@dataclass
class ValidateOptions:
    artifact: Path
    target: str
    data: Path | str | Callable
    out_dir: Path = Path("dist")
    reference: str | None = None         # the model before compression, for quality budgets
    recipe: Path | None = None           # its [task] and [data] sections are used
    emit_c: bool | None = None
    c_symbol: str | None = None
    arena_headroom: float | None = None
    metric: str | Callable | None = None
    metric_direction: str | None = None
    log: Callable[[str], None] = field(default=lambda msg: None)


def run_validate(opts: ValidateOptions):
    from . import __version__
    from .output import sha256_file, staged_dir
    from .budgets import judge_budgets
    from .measure.artifacts import validate
    from .pipeline import ExportResult, _firmware, _manifest, _notes, _target_summary
    from .recipe import load_recipe
    from .report.html import render_report
    from .report.schema import ArtifactRecord, Report
    from .report.summary import data_summary, task_notes
    from .sources.external import describe_artifact
    from .targets import load_target
    from .tasks.budget import check_budget_metric
    from .tasks.custom import load_metric
    from .timing import StageClock
    from .types import Artifact

    started, clock, log = time.perf_counter(), StageClock(), opts.log
    with clock.stage("load"):
        profile = load_target(opts.target)
        recipe = load_recipe(opts.recipe, base=profile.recipe) if opts.recipe else profile.recipe
        ext = describe_artifact(opts.artifact)
        engine = profile.runtime.engine
        if (engine == "onnxruntime") != (ext.format == "onnx"):
            raise ConfigError(f"target {profile.name!r} runs {engine}, which cannot run a .{ext.format} file",
                              where="--target", fix="pick a target whose runtime runs this format")
        custom = load_metric(opts.metric, opts.metric_direction) if opts.metric is not None else None
        from .datasets import load_dataset

        data = load_dataset(opts.data, ext.signature, recipe, custom=custom, log=log)
        check_budget_metric(profile.budgets, data.task, f"target {profile.name}")
    reference = None
    if opts.reference is not None:
        with clock.stage("reference"):
            reference = reference_record(opts.reference, data, log)
    final = Path(opts.out_dir) / profile.name
    with staged_dir(final) as staging:
        path = staging / ext.path.name
        shutil.copyfile(ext.path, path)
        art = Artifact(name=ext.name, path=path, format=ext.format, precision=ext.precision,
                       encoding=_encoding(path), sha256=sha256_file(path),
                       parent=reference[0].name if reference else "external",
                       settings={"made_by": "elsewhere", "origin": str(ext.path.resolve())})
        with clock.stage("validate"):
            measurements = validate([art], profile, data, reference[1] if reference else None, log)
        record = ArtifactRecord(name=art.name, file=path.name, format=art.format, precision=art.precision,
                                encoding=art.encoding, sha256=art.sha256, parent=art.parent,
                                settings=art.settings, measurements=measurements[art.name])
        records = ([reference[0]] if reference else []) + [record]
        artifacts = [art]
        emit_c = profile.emit_c if opts.emit_c is None else opts.emit_c
        if emit_c:
            c_art = _firmware(profile, opts, artifacts, record, staging, log)
            artifacts.append(c_art)
            records.append(ArtifactRecord(name=c_art.name, file=f"firmware/{c_art.path.name}",
                                          format=c_art.format, precision=c_art.precision,
                                          encoding=c_art.encoding, sha256=c_art.sha256,
                                          parent=c_art.parent, settings=c_art.settings))
        note = EXTERNAL_NOTE.format(name=art.name, origin=ext.path)
        report = Report(
            tool={"name": "edgeprune", "version": __version__}, target=_target_summary(profile),
            model={"source": str(ext.path), "sha256": art.sha256, "input_shape": list(ext.signature.input_shape),
                   "num_classes": data.num_classes or None, "parameters": None,
                   "task": data.task.describe(),
                   "external": {"made_elsewhere": True, "format": ext.format, "precision": ext.precision,
                                "reference": opts.reference, "note": note}},
            data=data_summary(data), seed=recipe.seed,
            recipe={"applied": False, "task": recipe.task.model_dump(mode="json"),
                    "data": recipe.data.model_dump(mode="json")},
            compression={"steps": [], "notes": [note]}, artifacts=records, deploy=art.name,
            budgets=judge_budgets(profile, record, reference[0] if reference else None, path, data.task),
            advice=[note] + _notes(profile) + task_notes(profile, data))
        (staging / "report.json").write_text(report.to_json())
        (staging / "report.html").write_text(render_report(report.to_dict()), encoding="utf-8")
        (staging / "manifest.json").write_text(json.dumps(_manifest(report, artifacts, staging), indent=2) + "\n")
    log(clock.summary())
    return ExportResult(report=report, out_dir=final, seconds=time.perf_counter() - started,
                        stages=dict(clock.seconds))


def _encoding(path: Path) -> str:
    if path.suffix != ".tflite":
        return "dense"
    from .runtimes.runner import _litert_interpreter

    interp, _ = _litert_interpreter(str(path), 1, "none")
    return "sparse" if any(t.get("sparsity_parameters") for t in interp.get_tensor_details()) else "dense"


def reference_record(model: str, data, log):
    """(the reference's ArtifactRecord, its outputs on the test split)."""
    import platform

    from .evaluate import keras_outputs, task_figures
    from .report.schema import ArtifactRecord
    from .sources import model_kind

    path = Path(model)
    names = [o.name for o in data.task.outputs]
    kind = model_kind(path) if path.exists() else None
    if kind is None:
        raise InputError("no reference model here", where=str(path),
                         fix="pass the model before compression: a Keras file, .tflite or .onnx")
    if kind == "external":
        from .devices.base import RunRequest
        from .devices.local import LocalDevice
        from .runtimes.outputs import split_outputs

        engine = "onnxruntime" if path.suffix == ".onnx" else "litert"
        run = LocalDevice().run(path, data.x_test, RunRequest(engine=engine, threads=1, warmup=0, repeats=0))
        outputs = split_outputs(run.outputs, run.extra.get("outputs_layout"), names, str(path))
        by, fmt = f"{run.runtime} on {run.where}", path.suffix.lstrip(".")
    elif kind == "keras3":
        from .sources.keras3 import Keras3Bridge

        bridge = Keras3Bridge(path, log)
        outputs = bridge.predict(data.x_test)
        by, fmt = f"keras {bridge.info['keras']} (Keras 3 process) on local {platform.machine()}", "keras"
    else:
        from .sources import load_source

        source, _ = load_source(path, log)
        outputs = keras_outputs(source.model, data)
        by, fmt = f"tf_keras on local {platform.machine()}", "keras"
    for name, out, spec in zip(names, outputs, data.task.outputs):
        if tuple(out.shape[1:]) != spec.shape:
            raise InputError(f"the reference's output {name!r} has shape {tuple(out.shape[1:])}, the "
                             f"artifact's {spec.shape}", where=str(path),
                             fix="pass the model the artifact was made from")
    meas = task_figures(data, outputs, None, by)
    record = ArtifactRecord(name=f"reference.{fmt}", format=fmt, precision="float32", parent=None,
                            settings={"source": str(path.resolve())}, measurements=meas)
    return record, outputs
