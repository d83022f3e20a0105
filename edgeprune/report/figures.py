"""The figures of report.json and `bench --json` as pydantic models: what a figure is
(``value``, ``unit``, ``method``, ``by`` and any extra keys), a latency figure (its samples
and control workload), per-operator rows, the constant-tensor breakdown.

Both sides use them: the report is validated against them when it is written
(:mod:`edgeprune.report.schema`), and ``edgeprune check`` reads reports with them
(:mod:`edgeprune.check.models`, which holds numeric figures to finite numbers).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, StrictStr


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _positive(value: Any) -> float | int:
    value = _number(value)
    if value <= 0:
        raise ValueError(f"must be above 0, got {value!r}")
    return value


Number = Annotated[float, PlainValidator(_number, json_schema_input_type=float)]
Positive = Annotated[float, PlainValidator(_positive, json_schema_input_type=float)]
Count = Annotated[StrictInt, Field(ge=0)]

OPEN = ConfigDict(extra="allow", frozen=True)
Method = Literal["measured", "estimated"]


class AnyFigure(BaseModel):
    """One figure, whatever its value (a number, per-layer fractions, a count per class):
    ``{"value", "unit", "method", "by", ...}``; extra keys are kept."""

    model_config = OPEN
    value: Any = None
    unit: StrictStr = ""
    method: Method
    by: StrictStr


class Figure(AnyFigure):
    """A figure whose value is a finite number (or null: not measured)."""

    value: Number | None = None


class Control(BaseModel):
    """The runner's control workload timed in blocks beside the model (see runner.py)."""

    model_config = OPEN
    workload: StrictStr
    pairs: list[tuple[Positive, Positive]] = Field(min_length=1)   # [control ms, model ms]


class LatencyFigure(Figure):
    """``value`` the median; ``p90``, ``min``, ``max``, ``n``... and the raw ``samples``."""

    samples: list[Positive] | None = Field(None, min_length=1)
    control: Control | None = None


class ClassesFigure(AnyFigure):
    value: dict[StrictStr, Count] | None = None


class Breakdown(BaseModel):
    """Constant-tensor bytes and op counts inside a file."""

    model_config = OPEN
    tensors: dict[StrictStr, Count] = Field(default_factory=dict)
    ops: dict[StrictStr, Count] = Field(default_factory=dict)


class OpRow(BaseModel):
    model_config = OPEN
    index: StrictInt
    op: StrictStr
    name: StrictStr | None = None
    instructions: Count | None = None
    ms: Number | None = None
    estimate_ms: Number | None = None
    share: Number | None = None


class OpsFigure(AnyFigure):
    """Per-operator cost: ``rows`` (measured ``ms``, exact ``instructions`` or ``estimate_ms``)."""

    rows: list[OpRow] = Field(default_factory=list)


LATENCY_FIGURES = ("latency_ms", "host_latency_ms")


class Measurements(BaseModel):
    """An artifact's figures by name. The names with a shape of their own are typed; every
    other name (a task metric, ``OUTPUT/accuracy``, sizes, sparsity...) is any figure."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, AnyFigure] = Field(init=False)   # type: ignore[assignment]
    latency_ms: LatencyFigure | None = None         # on the target itself only
    host_latency_ms: LatencyFigure | None = None    # this machine, when it is not the target
    latency_estimate_ms: Figure | None = None       # method "estimated", with error_band
    instructions_per_invoke: Figure | None = None
    size_bytes: Figure | None = None
    gzip_bytes: Figure | None = None
    ops: OpsFigure | None = None
    breakdown: Breakdown | None = None
