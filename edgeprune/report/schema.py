"""report.json: the shape every consumer (the table, `edgeprune check`, JUnit,
Markdown, report.html) reads, as pydantic models; its JSON Schema is generated from them
(edgeprune/schemas/report.schema.json, docs/schemas.md). Bump SCHEMA_VERSION on any
incompatible change.

Every figure is a mapping with ``value``, ``unit``, ``method`` ("measured" or
"estimated") and ``by`` (the runtime and device, or the estimation model)::

    {
      "schema_version": 1,
      "tool": {"name": "edgeprune", "version": "0.1.0"},
      "target": {"name": "host", "engine": "litert", "threads": 1, "delegate": "xnnpack",
                 "device": "local x86_64", "profile_sha256": "..."},
      "model": {"source": "models/digits", "sha256": "...", "input_shape": [8, 8, 1],
                "num_classes": 10, "parameters": 12345},
      "data": {"source": "...", "test_samples": 360, "sha256": "..."},
      "seed": 0,
      "recipe": {...},
      "compression": {"sparsity": {"conv2d/kernel": 0.75, ...}, "history": {...}, "notes": [...]},
      "artifacts": [
        {"name": "baseline.keras", "file": null, "format": "keras", "precision": "float32",
         "encoding": "dense", "sha256": null, "parent": null, "settings": {},
         "measurements": {"accuracy": FIGURE, ...}},
        {"name": "int8.tflite", "file": "model_int8.tflite", "format": "tflite",
         "precision": "int8", "encoding": "dense", "sha256": "...",
         "parent": "compressed.keras", "settings": {...},
         "measurements": {
            "accuracy": FIGURE, "precision_macro": FIGURE, "recall_macro": FIGURE,
            "f1_macro": FIGURE, "agreement": FIGURE,           # top-1 agreement with baseline
            "size_bytes": FIGURE, "gzip_bytes": FIGURE,
            "latency_ms": LATENCY,                              # on the target itself only
            "host_latency_ms": LATENCY,                         # this machine, other targets
            "instructions_per_invoke": FIGURE,                  # emulated devices
            "latency_estimate_ms": FIGURE,                      # method "estimated"
            "arena_bytes": FIGURE, "flash_bytes": FIGURE,       # microcontrollers
            "host_agreement": FIGURE}}                          # outputs vs the host run
      ],
      "deploy": "int8.tflite",
      "budgets": [{"name": "max_size_bytes", "figure": "size_bytes", "artifact": "int8.tflite",
                   "limit": 2000000, "value": 12345, "verdict": "pass"}],
      "advice": ["..."],
      "verdict": "pass"
    }

The metrics are the task's (edgeprune.tasks): the classification names above, or for a
regression output ``mse``, ``mae``, ``max_abs_error`` and ``mae_vs_baseline``; a
multi-output model prefixes each with its output, ``OUTPUT/accuracy``. ``model.task``
says how each output's task was decided, ``model.keras3`` (a Keras 3 source) the
bridge's parity, ``model.external`` (``edgeprune validate``) that the artifact was made
elsewhere, and ``data.settings`` how the data was read.

LATENCY is a FIGURE whose ``value`` is the median, with ``p90``, ``min``, ``max``,
``mean``, ``stdev``, ``iqr``, ``n`` and the raw ``samples`` beside it. ``latency_ms``
exists only where the time was measured on the target itself (the ``host`` target,
an SSH board), and carries ``control``: a fixed workload timed in alternating blocks
beside the model (``{"workload", "pairs": [[control ms, model ms], ...]}``), which
``edgeprune check`` divides out when it cannot re-measure A/B. This machine's time for
any other target is ``host_latency_ms``: shown, never gated. Accuracy-like
figures are fractions in [0, 1]. A budget's verdict is "pass", "fail" or
"not_measured" (the figure could not be measured on this target; not a pass).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, computed_field

from .figures import Measurements

SCHEMA_VERSION = 1

Method = Literal["measured", "estimated"]


def _item(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


Number = Annotated[int | float, BeforeValidator(_item), Field(allow_inf_nan=False)]


def figure(value: Any, unit: str, by: str, method: Method = "measured", **extra: Any) -> dict:
    """One figure with how it was obtained."""
    out = {"value": value, "unit": unit, "method": method, "by": by}
    out.update(extra)
    return out


def _plain(value: Any) -> Any:
    """``value`` as JSON would carry it (numpy scalars and arrays, tuples: plain values)."""
    return json.loads(json.dumps(value, default=_jsonable))


def _figures(measurements: dict) -> dict:
    """Every figure checked against :class:`~edgeprune.report.figures.Measurements`; the
    mapping itself is kept (callers read and add figures as dicts)."""
    Measurements.model_validate(_plain(measurements))
    return measurements


class _Positional(BaseModel):
    """Also built from positional arguments, in field order (as the dataclasses it replaced)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            names = list(type(self).model_fields)
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
            kwargs.update(zip(names, args))
        super().__init__(**kwargs)


_STRICT = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class ArtifactRecord(_Positional):
    """One artifact (or in-memory stage) with its lineage and figures."""

    model_config = _STRICT
    name: StrictStr = Field(min_length=1)
    format: StrictStr
    precision: StrictStr
    file: StrictStr | None = None
    encoding: StrictStr = "dense"
    sha256: StrictStr | None = None
    parent: StrictStr | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    measurements: Annotated[dict[str, dict[str, Any]], AfterValidator(_figures)] = Field(default_factory=dict)


class BudgetVerdict(_Positional):
    model_config = _STRICT
    name: StrictStr
    figure: StrictStr
    artifact: StrictStr
    limit: Number
    value: Number | None
    verdict: Literal["pass", "fail", "not_measured"]
    note: StrictStr = ""


class Report(_Positional):
    """report.json. :meth:`to_json` checks the whole document against this model again
    (figures included) before it is written."""

    model_config = _STRICT
    schema_version: StrictInt = SCHEMA_VERSION
    tool: dict[str, Any] = Field(default_factory=dict)
    target: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    seed: StrictInt
    recipe: dict[str, Any]
    compression: dict[str, Any]
    artifacts: list[ArtifactRecord]
    deploy: StrictStr
    budgets: list[BudgetVerdict]
    advice: list[StrictStr]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "fail" if any(b.verdict != "pass" for b in self.budgets) else "pass"

    def artifact(self, name: str) -> ArtifactRecord:
        for art in self.artifacts:
            if art.name == name:
                return art
        raise KeyError(name)

    def to_dict(self) -> dict:
        return self.model_dump()

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False, default=_jsonable) + "\n"
        Report.model_validate({k: v for k, v in json.loads(text).items() if k != "verdict"})
        return text


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
