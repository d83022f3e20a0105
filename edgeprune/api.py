"""The Python API, for notebooks and scripts: the same runs as the command line.

    import edgeprune
    result = edgeprune.export(model, (x_train, y_train, x_test, y_test), target="rpi4")
    result.verdict, result.deploy, result.report["budgets"]

``model`` is an in-memory tf_keras or Keras 3 model, a model file or SavedModel
folder, or a reference model name; ``data`` is a tuple of four arrays, a dict of them,
a dict of ``tf.data`` pipelines or ``(x, y)`` pairs (``{"train": ..., "test": ...}``),
an .npz path, an image folder, or a loader. See docs/api.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import InputError

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Result:
    """One target's export (or validation): the report as a dict and typed, and its files."""

    report: dict                      # report.json, as written
    record: Any                       # the same as edgeprune.report.schema.Report
    out_dir: Path
    artifacts: dict[str, Path]        # artifact name -> its file (only those with a file)
    deploy: Path | None               # the file to put on the device
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.report["verdict"]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def figure(self, artifact: str, name: str) -> Any:
        """A measured value: ``result.figure("int8.tflite", "latency_ms")``."""
        return self.record.artifact(artifact).measurements[name]["value"]


def _result(run) -> Result:
    report = run.report.to_dict()
    files = {a["name"]: run.out_dir / a["file"] for a in report["artifacts"] if a.get("file")}
    return Result(report=report, record=run.report, out_dir=run.out_dir, artifacts=files,
                  deploy=files.get(report["deploy"]), seconds=run.seconds, stages=dict(run.stages))


def export(model: Any = None, data: Any = None, *, target: str | list[str] = "host",
           recipe: str | Path | Mapping | None = None, out_dir: str | Path = "dist", seed: int | None = None,
           epochs: int | None = None, train_epochs: int | None = None, backoff: bool | None = None,
           emit_c: bool | None = None, metric: str | Callable | None = None,
           metric_direction: str | None = None, log: Callable[[str], None] | None = None,
           verbose: bool = False) -> Result | dict[str, Result]:
    """Compress, export and validate ``model`` for ``target`` (a list: several targets,
    compressed once per distinct recipe; returns ``{target: Result}`` and writes
    ``out_dir/summary.json``). ``recipe``: a TOML file or a mapping of recipe sections.
    Progress lines go to ``log`` (default: stderr); third-party log noise is kept back
    unless ``verbose``. Raises edgeprune.EdgepruneError subclasses on bad input."""
    from .pipeline import ExportOptions, run_export
    from .tempdirs import run_tempdir

    with _session(log, verbose) as say, run_tempdir() as tmp:
        opts = ExportOptions(target=target if isinstance(target, str) else target[0], out_dir=Path(out_dir),
                             model=_model_path(model, tmp), data=_data(data),
                             recipe=_recipe_path(recipe, tmp), seed=seed, finetune_epochs=epochs,
                             train_epochs=train_epochs, backoff=backoff, emit_c=emit_c, metric=metric,
                             metric_direction=metric_direction, log=say)
        if isinstance(target, str):
            return _result(run_export(opts))
        from .fleet import run_targets

        fleet = run_targets(opts, list(target), log=say)
    failed = next((o for o in fleet.outcomes if o.result is None), None)
    if failed is not None:   # every target ran and summary.json names each failure
        raise failed.exception
    return {o.target: _result(o.result) for o in fleet.outcomes}


def validate(artifact: str | Path, data: Any, *, target: str = "host", reference: Any = None,
             out_dir: str | Path = "dist", recipe: str | Path | Mapping | None = None,
             metric: str | Callable | None = None, metric_direction: str | None = None,
             log: Callable[[str], None] | None = None, verbose: bool = False) -> Result:
    """Validate an existing .tflite/.onnx on ``target`` (``reference``: the model before
    compression, in memory or a file, for the quality budgets)."""
    from .tempdirs import run_tempdir
    from .validate_external import ValidateOptions, run_validate

    with _session(log, verbose) as say, run_tempdir() as tmp:
        ref = _model_path(reference, tmp) if reference is not None else None
        return _result(run_validate(ValidateOptions(
            artifact=Path(artifact), target=target, data=_data(data), out_dir=Path(out_dir), reference=ref,
            recipe=_recipe_path(recipe, tmp), metric=metric, metric_direction=metric_direction, log=say)))


def bench(artifact: str | Path, target: str = "host", *, repeats: int | None = None,
          log: Callable[[str], None] | None = None, verbose: bool = False) -> dict:
    """Measure an existing .tflite/.onnx on ``target`` (the dict `edgeprune bench --json` prints)."""
    from .bench import bench_artifact

    with _session(log, verbose) as say:
        return bench_artifact(artifact, target, repeats=repeats, log=say)


def check(report: str | Path | Result, baseline: str | Path, *, update: bool = False, remeasure: bool = True,
          **tolerances: float):
    """Compare a report with a baseline (`edgeprune check`); ``update=True`` writes the
    baseline instead. Returns edgeprune.check's CheckResult (``.passed``, ``.rows``,
    ``.to_dict()``) or, when updating, its BaselineWrite. ``tolerances``: Tolerances
    fields (``latency_rel``, ``size_bytes_rel``, ``accuracy_points`` ...)."""
    from .check import check_files, update_baseline

    path = report.out_dir / "report.json" if isinstance(report, Result) else Path(report)
    if update:
        return update_baseline(path, baseline)
    return check_files(path, baseline, overrides=tolerances, remeasure=remeasure)


def callable_package(module_name: str, function: str) -> None:
    """Make the package ``edgeprune.<function>`` callable as the API function of that name:
    ``edgeprune.export``, ``edgeprune.check`` and ``edgeprune.bench`` are also modules, and once one is
    imported it shadows the lazy attribute of ``edgeprune``."""
    import sys
    import types

    class _Callable(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return globals()[function](*args, **kwargs)

    sys.modules[module_name].__class__ = _Callable


# ---------------------------------------------------------------- inputs

def _session(log, verbose):
    from .quiet import session

    return session(verbose, False, log)


def _model_path(model: Any, tmp: Path) -> str | None:
    """A model object is saved to this run's temporary folder and read back from there
    (so it goes through the same checks as a file); paths and names pass through."""
    if model is None or isinstance(model, (str, Path)):
        return None if model is None else str(model)
    if not hasattr(model, "save") or not hasattr(model, "predict"):
        raise InputError(f"a {type(model).__name__} is not a Keras model", where="model",
                         expected="a tf_keras or Keras 3 model, or the path of a model file")
    path = tmp / f"{getattr(model, 'name', None) or 'model'}.keras"
    model.save(str(path))
    return str(path)


def _data(data: Any):
    """Arrays, dicts of arrays and tf.data pipelines become a loader (edgeprune/datasets/loader.py)."""
    if data is None or isinstance(data, (str, Path)) or callable(data):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 4:
        splits = {"train": (data[0], data[1]), "test": (data[2], data[3])}
    elif isinstance(data, Mapping) and set(_ARRAYS) <= set(data):
        splits = {"train": (data["x_train"], data["y_train"]), "test": (data["x_test"], data["y_test"])}
        if "x_val" in data and "y_val" in data:
            splits["val"] = (data["x_val"], data["y_val"])
    elif isinstance(data, Mapping) and {"train", "test"} <= set(data):
        splits = dict(data)
    else:
        raise InputError(f"cannot read data given as a {type(data).__name__}", where="data",
                         expected="(x_train, y_train, x_test, y_test); a dict with those keys; "
                                  "{'train': ..., 'test': ...} of tf.data pipelines or (x, y) pairs; "
                                  "or an .npz / folder path")

    def arrays():
        return splits
    arrays.__qualname__ = "in-memory data"
    return arrays


def _recipe_path(recipe: Any, tmp: Path) -> Path | None:
    """A mapping of recipe sections is written as a TOML file (read like --recipe)."""
    if recipe is None or isinstance(recipe, (str, Path)):
        return None if recipe is None else Path(recipe)
    if hasattr(recipe, "model_dump"):
        recipe = recipe.model_dump(mode="json")
    if not isinstance(recipe, Mapping):
        raise InputError(f"a {type(recipe).__name__} is not a recipe", where="recipe",
                         expected="a mapping of recipe sections, a Recipe, or a .toml path")
    path = tmp / "recipe.toml"
    steps = ("prune", "regularize", "cluster", "qat")      # None turns these off; others keep the base
    path.write_text("".join(f"{key} = {_toml(value)}\n" for key, value in recipe.items()
                            if value is not None or key in steps))
    return path


def _toml(value: Any) -> str:
    if value is None:
        return "false"                       # a step turned off (recipe: `prune = false`)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items() if v is not None) + " }"
    return "[" + ", ".join(_toml(v) for v in value) + "]"
