"""What `edgeprune check` found: one :class:`Row` per figure compared, what grew, the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from .rules import POINTS

Verdict = Literal["unchanged", "within", "improved", "regressed", "new", "missing",
                  "incomparable", "not_compared", "shown"]
FAILING: frozenset[str] = frozenset({"regressed", "missing", "incomparable"})
#: Verdicts printed by default: something changed, failed, or could not be judged.
NOTABLE: frozenset[str] = FAILING | {"improved", "new", "not_compared"}


@dataclass(frozen=True)
class Row:
    """One figure of one artifact, compared."""

    target: str
    artifact: str
    figure: str
    unit: str
    baseline: float | None
    value: float | None
    delta: float | None            # new - baseline, in ``unit`` (percentage points for points)
    delta_rel: float | None        # (new - baseline) / baseline, or the median ratio - 1
    delta_text: str
    tolerance: str                 # e.g. "size_bytes_rel=0 (profile)"
    verdict: Verdict
    detail: str = ""               # how it was decided (test, ratio) or what to do

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    @property
    def notable(self) -> bool:
        return self.verdict in NOTABLE

    def shown(self, value: float | None) -> str:
        """``value`` for a table: fractions in %, integers with separators, then the unit."""
        if value is None:
            return "-"
        if self.figure.rpartition("/")[2] in POINTS:
            return f"{value * 100:.2f}%"
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
        return f"{text} {self.unit}".rstrip()


@dataclass(frozen=True)
class Growth:
    """What grew inside an artifact: constant tensors and op counts (``breakdown``), and
    per-op cost (``ops`` rows: instructions, else measured ms, else estimated ms)."""

    target: str
    artifact: str
    tensors: list[tuple[str, int, int]]   # (name, baseline bytes, new bytes), largest growth first
    ops: list[tuple[str, int, int]]       # (op type, baseline count, new count)
    op_costs: list[tuple[str, float, float, str]] = field(default_factory=list)
    # (op row label, baseline cost, new cost, unit), largest growth first

    def lines(self, limit: int = 5) -> list[str]:
        out = [f"tensor {name}: {old} -> {new} B (+{new - old})"
               for name, old, new in self.tensors[:limit]]
        if len(self.tensors) > limit:
            out.append(f"... and {len(self.tensors) - limit} more tensors")
        out += [f"op {op}: {old} -> {new} (+{new - old})" for op, old, new in self.ops]
        out += [f"op {label}: {_num(old)} -> {_num(new)} {unit} (+{_num(new - old)})"
                for label, old, new, unit in self.op_costs[:limit]]
        if len(self.op_costs) > limit:
            out.append(f"... and {len(self.op_costs) - limit} more ops")
        return out


def _num(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


@dataclass
class CheckResult:
    """Every comparison, the report's budgets and what grew; ``passed`` is the gate."""

    rows: list[Row]
    budgets: dict[str, list[dict]]                  # target -> the report's budgets
    growth: list[Growth] = field(default_factory=list)
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> in force
    latency_method: str = ""
    seconds: float = 0.0                            # time the check took, A/B runs included

    @property
    def targets(self) -> list[str]:
        return list(self.budgets)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.failed]

    @property
    def improvements(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == "improved"]

    @property
    def not_compared(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == "not_compared"]

    @property
    def failed_budgets(self) -> list[tuple[str, dict]]:
        return [(target, b) for target, budgets in self.budgets.items()
                for b in budgets if b.get("verdict") != "pass"]

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.failed_budgets

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def growth_for(self, target: str, artifact: str) -> Growth | None:
        for g in self.growth:
            if (g.target, g.artifact) == (target, artifact):
                return g
        return None

    def to_dict(self) -> dict:
        """The ``check --json`` output, checked against :class:`~.output_model.CheckOutput`."""
        from .output_model import CheckOutput

        out = {
            "verdict": self.verdict,
            "targets": self.targets,
            "latency_method": self.latency_method,
            "tolerances": self.tolerances,
            "rows": [asdict(row) | {"failed": row.failed} for row in self.rows],
            "budgets": self.budgets,
            "growth": [asdict(g) for g in self.growth],
            "counts": {"regressions": len(self.regressions),
                       "improvements": len(self.improvements),
                       "not_compared": len(self.not_compared),
                       "failed_budgets": len(self.failed_budgets)},
            "seconds": round(self.seconds, 3),
        }
        CheckOutput.model_validate(out)
        return out
