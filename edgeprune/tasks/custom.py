"""A user's metric, from ``--metric MODULE:FUNCTION`` or the Python API (never from a file)."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from ..user_code import import_callable
from . import DIRECTIONS, CustomMetric


def load_metric(spec: str | Callable, direction: str | None) -> CustomMetric:
    """``fn(y_true, y_pred) -> float``; ``direction`` ("higher" or "lower" is better) comes from
    the caller or from the function's ``greater_is_better`` attribute, and is never guessed."""
    fn, origin = import_callable(spec, what="metric", where="--metric")
    if direction is None and hasattr(fn, "greater_is_better"):
        direction = "higher" if fn.greater_is_better else "lower"
    if direction not in ("higher", "lower"):
        raise ConfigError(f"which way the metric {origin} improves is not stated", where="--metric-direction",
                          expected='"higher" or "lower"',
                          fix="pass --metric-direction higher|lower, or set FUNCTION.greater_is_better")
    name = getattr(fn, "__name__", "metric")
    if name in DIRECTIONS:
        name = f"user_{name}"
    return CustomMetric(name=name, fn=fn, direction=direction, origin=origin)
