"""report.json: the shape every consumer (the table, `edgeprune check`, JUnit,
Markdown) reads. Bump SCHEMA_VERSION on any incompatible change.

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
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

Method = Literal["measured", "estimated"]


def figure(value: Any, unit: str, by: str, method: Method = "measured", **extra: Any) -> dict:
    """One figure with how it was obtained."""
    out = {"value": value, "unit": unit, "method": method, "by": by}
    out.update(extra)
    return out


@dataclass
class ArtifactRecord:
    name: str
    format: str
    precision: str
    file: str | None = None
    encoding: str = "dense"
    sha256: str | None = None
    parent: str | None = None
    settings: dict = field(default_factory=dict)
    measurements: dict = field(default_factory=dict)


@dataclass
class BudgetVerdict:
    name: str
    figure: str
    artifact: str
    limit: float
    value: float | None
    verdict: Literal["pass", "fail", "not_measured"]
    note: str = ""


@dataclass
class Report:
    target: dict
    model: dict
    data: dict
    seed: int
    recipe: dict
    compression: dict
    artifacts: list[ArtifactRecord]
    deploy: str
    budgets: list[BudgetVerdict]
    advice: list[str]
    tool: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def verdict(self) -> str:
        return "fail" if any(b.verdict != "pass" for b in self.budgets) else "pass"

    def artifact(self, name: str) -> ArtifactRecord:
        for art in self.artifacts:
            if art.name == name:
                return art
        raise KeyError(name)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdict"] = self.verdict
        order = ["schema_version", "tool", "target", "model", "data", "seed", "recipe",
                 "compression", "artifacts", "deploy", "budgets", "advice", "verdict"]
        return {key: data[key] for key in order}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=_jsonable) + "\n"


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
