"""Which figures `edgeprune check` compares, how, and with which tolerance.

A figure is gated only when it is a property of the file on its target: sizes,
memory, the task's metrics, exact emulated instruction counts, and wall-clock
latency measured on the target itself (``latency_ms``: the ``host`` target, or a
board over SSH). Host wall-clock on any other target (``host_latency_ms``) and
estimates derived from counts are shown, never gated.

Adding a figure, or a task's metric, is one line in :data:`RULES` (the metric's
tolerance is a field of :class:`edgeprune.targets.Tolerances`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["relative", "points", "classes", "latency", "shown"]


@dataclass(frozen=True)
class FigureRule:
    """How one figure is compared.

    ``relative``: the change as a fraction of the baseline; ``points``: a fraction in
    [0, 1] whose change is judged in percentage points; ``classes``: a mapping of
    instruction class to count, each class's growth judged as a fraction of the
    baseline's total; ``latency``: re-measured A/B (see :mod:`.latency`); ``shown``:
    compared and printed, never a failure. ``better`` is the good direction.
    """

    figure: str
    kind: Kind
    tolerance: str
    better: Literal["lower", "higher"] = "lower"

    @property
    def gated(self) -> bool:
        return self.kind != "shown"


#: The figures compared, in display order.
RULES: tuple[FigureRule, ...] = (
    FigureRule("size_bytes", "relative", "size_bytes_rel"),
    FigureRule("gzip_bytes", "relative", "size_bytes_rel"),
    FigureRule("flash_bytes", "relative", "size_bytes_rel"),
    FigureRule("arena_bytes", "relative", "arena_bytes_rel"),
    FigureRule("instructions_per_invoke", "relative", "instructions_rel"),
    FigureRule("instructions_by_class", "classes", "instructions_rel"),
    # the task's metrics, by name (a regression task adds its own lines here)
    FigureRule("accuracy", "points", "accuracy_points", better="higher"),
    FigureRule("f1_macro", "points", "f1_points", better="higher"),
    FigureRule("mse", "relative", "metric_rel"),
    FigureRule("mae", "relative", "metric_rel"),
    FigureRule("max_abs_error", "relative", "metric_rel"),
    FigureRule("latency_ms", "latency", "latency_rel"),
    FigureRule("host_latency_ms", "shown", "latency_rel"),
    FigureRule("latency_estimate_ms", "shown", "latency_rel"),
)

RULE_BY_FIGURE = {rule.figure: rule for rule in RULES}
#: The task metrics: a multi-output model reports them per output as ``OUTPUT/metric``.
TASK_METRICS = ("accuracy", "f1_macro", "mse", "mae", "max_abs_error")


def rules_for(names) -> tuple[FigureRule, ...]:
    """:data:`RULES`, then one rule per ``OUTPUT/metric`` among ``names`` (a multi-output
    model's metrics), judged like the metric it names."""
    extra = []
    for name in sorted(set(names)):
        output, _, metric = name.rpartition("/")
        if output and metric in TASK_METRICS:
            base = RULE_BY_FIGURE[metric]
            extra.append(FigureRule(name, base.kind, base.tolerance, base.better))
    return RULES + tuple(extra)
POINTS = frozenset(rule.figure for rule in RULES if rule.kind == "points")
#: Figures whose ``value`` must be a number (``classes`` holds a mapping).
NUMERIC = tuple(rule.figure for rule in RULES if rule.kind != "classes")
LATENCY_FIGURES = ("latency_ms", "host_latency_ms")
