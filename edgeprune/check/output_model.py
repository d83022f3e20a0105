"""`edgeprune check --json`: what the gate found, as pydantic models (its JSON Schema is
generated from them: edgeprune/schemas/check.schema.json). :meth:`CheckResult.to_dict`
checks its output against :class:`CheckOutput`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ..report.figures import Count, Number
from .models import Budget

_STRICT = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)
Verdict = Literal["unchanged", "within", "improved", "regressed", "new", "missing",
                  "incomparable", "not_compared", "shown"]


class RowOut(BaseModel):
    """One figure of one artifact, compared (check/result.py's Row)."""

    model_config = _STRICT
    target: StrictStr
    artifact: StrictStr
    figure: StrictStr
    unit: StrictStr
    baseline: Number | None
    value: Number | None
    delta: Number | None = Field(description="new - baseline, in unit (percentage points for points)")
    delta_rel: Number | None = Field(description="(new - baseline) / baseline, or the median ratio - 1")
    delta_text: StrictStr
    tolerance: StrictStr
    verdict: Verdict
    detail: StrictStr = ""
    failed: StrictBool


class GrowthOut(BaseModel):
    """What grew inside an artifact: tensors and op counts, per-op cost."""

    model_config = _STRICT
    target: StrictStr
    artifact: StrictStr
    tensors: list[tuple[StrictStr, Count, Count]]   # name, baseline bytes, new bytes
    ops: list[tuple[StrictStr, Count, Count]]       # op type, baseline count, new count
    op_costs: list[tuple[StrictStr, Number, Number, StrictStr]] = Field(default_factory=list)


class Counts(BaseModel):
    model_config = _STRICT
    regressions: Count
    improvements: Count
    not_compared: Count
    failed_budgets: Count


class CheckOutput(BaseModel):
    model_config = _STRICT
    verdict: Literal["pass", "fail"]
    targets: list[StrictStr]
    latency_method: StrictStr
    tolerances: dict[StrictStr, dict[StrictStr, Number]]
    rows: list[RowOut]
    budgets: dict[StrictStr, list[Budget]]
    growth: list[GrowthOut]
    counts: Counts
    seconds: Number
