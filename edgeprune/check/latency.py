"""How `edgeprune check` judges wall-clock latency, which the machine's load moves.

Samples stored in a report from another day are never compared directly: two runs at
different load differ by tens of percent with the same file. Instead:

1. **A/B in this run** (the rule whenever both files are at hand): the baseline's
   artifact (A) and the report's (B) are loaded side by side on the target's device
   and timed in :data:`AB_PAIRS` pairs of blocks of about :data:`AB_BLOCK_MS` each,
   the order alternating (AB, BA, AB, ...), both files loaded afresh for every pair
   (one interpreter instance of a file can run up to 10% faster or slower than
   another for as long as it lives, by where its buffers land: kept for the whole run,
   two instances of one file were told apart 20 pairs out of 20). Each pair gives the
   log-ratio of its two block medians; load that changes slowly falls on both halves
   of a pair alike. A
   **regression** needs both: the pairs' median ratio above ``1 + latency_rel``,
   and a one-sided sign test on the log-ratios with p < :data:`ALPHA` (B slower in
   at least 16 of 20 pairs). An **improvement** is the same the other way
   (ratio below ``1 - latency_rel``). The row gives the ratio, its 98%
   distribution-free confidence interval (order statistics of the log-ratios) and
   the count of pairs.
2. **Fallback** (no baseline artifact, or no device to run it on): each report
   carries a control workload (a fixed numpy computation) timed in alternating
   blocks beside the model at export time; the gate compares the model's time
   *divided by the control's* between the two reports. The control takes out much of
   the load, not all of it: on a shared 2-core machine the normalised time of one
   file moved by up to 1.5x between runs (a model and a control do not slow alike).
   So a regression needs all three: a one-sided Mann-Whitney U test on the
   per-block normalised times with p < ALPHA, their median ratio above
   ``1 + max(latency_rel, FALLBACK_MIN_REL)``, and the ratio of the stored medians
   above the same. It catches gross slowdowns only; A/B is the rule.
3. Neither: the row is ``not_compared`` (shown, never a pass in disguise) with what
   to do.
"""

from __future__ import annotations

import math
from typing import Any

#: Significance level of the one-sided tests (sign test, Mann-Whitney U).
ALPHA = 0.01
#: Pairs of blocks in an A/B re-measurement, and the length of one block.
AB_PAIRS = 20
AB_BLOCK_MS = 10.0
#: The fallback (control-normalised, across runs) needs at least this relative change.
FALLBACK_MIN_REL = 0.5

LATENCY_METHOD = (
    f"latency_ms: re-measured A/B in this run (baseline and new artifact on the target's "
    f"device, {AB_PAIRS} alternating pairs of ~{AB_BLOCK_MS:g} ms blocks, both files "
    f"loaded afresh for each pair); a regression "
    f"needs the median ratio of the pairs above 1 + latency_rel AND a one-sided sign test "
    f"p < {ALPHA}. Without the baseline artifact: the model's time divided by a control "
    f"workload timed beside it at export, Mann-Whitney U p < {ALPHA} AND that ratio AND "
    f"the ratio of the stored medians above 1 + max(latency_rel, {FALLBACK_MIN_REL}). Host wall-clock on a target that is not "
    f"this machine is shown, never gated")


def sign_test(wins: int, n: int) -> float:
    """One-sided sign test: P(at least ``wins`` of ``n`` fair coin flips)."""
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2.0 ** n


def median_interval(values: list[float], alpha: float = ALPHA) -> tuple[float, float]:
    """A distribution-free (1 - 2 alpha) confidence interval for the median of ``values``:
    the k-th smallest and k-th largest, k the largest with P(Binomial(n, 1/2) < k) <= alpha."""
    ordered = sorted(values)
    n = len(ordered)
    k, below = 0, 0.0
    while k < n // 2:
        below += math.comb(n, k) / 2.0 ** n
        if below > alpha:
            break
        k += 1
    if k == 0:
        return -math.inf, math.inf
    return ordered[k - 1], ordered[n - k]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _verdict(ratio: float, p_slow: float, p_fast: float, rel: float) -> str:
    if ratio > 1 + rel and p_slow < ALPHA:
        return "regressed"
    if ratio < 1 - rel and p_fast < ALPHA:
        return "improved"
    return "unchanged" if ratio == 1 else "within"


def decide_ab(ab: dict, tol: float) -> dict:
    """Row fields from an A/B run: ``ab["pairs"]`` = [[baseline ms, new ms], ...]."""
    pairs = ab["pairs"]
    logs = [math.log(new / old) for old, new in pairs]
    slower, faster = sum(x > 0 for x in logs), sum(x < 0 for x in logs)
    p_slow, p_fast = sign_test(slower, slower + faster), sign_test(faster, slower + faster)
    ratio = math.exp(_median(logs))
    low, high = median_interval(logs)
    old_ms, new_ms = _median([p[0] for p in pairs]), _median([p[1] for p in pairs])
    detail = (f"A/B in this run on {ab['where']} ({ab['runtime']}): {len(pairs)} pairs of "
              f"blocks ({ab['block_invokes'][0]}/{ab['block_invokes'][1]} invokes), median "
              f"ratio {ratio:.3f} (98% CI {math.exp(low):.3f}-{math.exp(high):.3f}), new slower "
              f"in {slower}/{len(pairs)} pairs, sign test p={min(p_slow, p_fast):.2g}")
    if ab.get("found"):
        detail += f"; baseline artifact {ab['found']}"
    return dict(baseline=old_ms, value=new_ms, delta=new_ms - old_ms, delta_rel=ratio - 1,
                verdict=_verdict(ratio, p_slow, p_fast, tol), detail=detail,
                delta_text=f"{ratio - 1:+.1%} A/B")


def control_logs(control: Any) -> list[float]:
    """log(model ms / control ms) per pair of blocks of a figure's ``control``."""
    return [math.log(model / ctl) for ctl, model in control.pairs]


def decide_control(old: Any, new: Any, tol: float, why: str) -> dict:
    """Row fields from the control-normalised times stored in both reports (the fallback)."""
    x, y = control_logs(new.control), control_logs(old.control)
    ratio = math.exp(_median(x) - _median(y))
    raw = new.value / old.value
    p_slow, p_fast = mann_whitney_u(x, y)
    rel = max(tol, FALLBACK_MIN_REL)
    verdict = _verdict(ratio, p_slow, p_fast, rel)
    if verdict == "regressed" and raw <= 1 + rel or verdict == "improved" and raw >= 1 - rel:
        verdict = "within"
    detail = (f"{why}; fallback: time divided by the control workload timed beside it at "
              f"export ({new.control.workload}): ratio {ratio:.3f} over {len(y)}/{len(x)} "
              f"blocks, Mann-Whitney U p={min(p_slow, p_fast):.2g}; stored medians {raw:.3f}; "
              f"a regression needs both ratios > 1 + {rel:g}")
    return dict(baseline=old.value, value=new.value, delta=new.value - old.value,
                delta_rel=ratio - 1, verdict=verdict, detail=detail,
                delta_text=f"{ratio - 1:+.1%} vs control")


def not_compared(old: Any, new: Any, why: str) -> dict:
    return dict(baseline=old.value, value=new.value, delta=None, delta_rel=None,
                verdict="not_compared", delta_text="",
                detail=f"{why}, and the {'baseline' if old.control is None else 'report'} "
                       f"has no control workload to normalise by: latency not judged; refresh "
                       f"the baseline with --update-baseline (it keeps the artifacts beside it)")


def shown(old: Any, new: Any) -> dict:
    """A figure shown for information: the ratio of the stored medians, never a verdict."""
    ratio = new.value / old.value if old.value else math.inf
    return dict(baseline=old.value, value=new.value, delta=new.value - old.value,
                delta_rel=ratio - 1, verdict="shown", delta_text=f"{ratio - 1:+.1%} median",
                detail="not measured on the target; shown, never gated")


def mann_whitney_u(x, y) -> tuple[float, float]:
    """One-sided Mann-Whitney U p-values: (x stochastically greater than y, x less).

    The normal approximation with tie and continuity corrections, the same figures as
    ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")`` without importing
    scipy.stats (seconds on a busy machine).
    """
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    nx, ny = len(x), len(y)
    n = nx + ny
    values, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True,
                                        return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]          # average ranks of ties
    u_x = float(ranks[:nx].sum()) - nx * (nx + 1) / 2.0
    ties = float((counts.astype(float) ** 3 - counts).sum())
    sigma = math.sqrt(nx * ny / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0.0:           # every sample equal: no evidence either way
        return 1.0, 1.0
    mu = nx * ny / 2.0

    def p_above(u: float) -> float:
        return 0.5 * math.erfc((u - mu - 0.5) / sigma / math.sqrt(2.0))

    return p_above(u_x), p_above(nx * ny - u_x)
