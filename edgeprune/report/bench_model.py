"""`edgeprune bench --json`: one file measured on one target, as a pydantic model (its JSON
Schema is generated from it: edgeprune/schemas/bench.schema.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from .figures import AnyFigure, Count, Figure, LatencyFigure, OpsFigure


class BenchResult(BaseModel):
    """Sizes as plain byte counts; every other measurement a figure with ``method`` and ``by``
    (``latency_ms`` only where the target is this machine; ``latency_estimate_ms`` and
    ``instructions_per_invoke`` on an emulated board; the emulated core's own figures)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, AnyFigure] = Field(init=False)   # type: ignore[assignment]
    artifact: StrictStr
    target: StrictStr
    device: StrictStr
    runtime: StrictStr
    size_bytes: Count
    gzip_bytes: Count
    latency_ms: LatencyFigure | None = None
    instructions_per_invoke: Figure | None = None
    latency_estimate_ms: Figure | None = None
    ops: OpsFigure | None = None
    arena_bytes: Count | None = None


def checked_bench(result: dict) -> dict:
    """``result`` after checking it against :class:`BenchResult` (it is printed as it is)."""
    BenchResult.model_validate(result)
    return result
