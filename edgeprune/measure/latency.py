"""Statistics over per-invoke latency samples.

Medians and percentiles, not means, describe latency on a shared machine: a few
preempted invokes move the mean but not the median. The spread is reported as
the interquartile range and as (p90 - min) / median.
"""

from __future__ import annotations

import numpy as np


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    q25, median, q75, p90 = np.percentile(a, [25, 50, 75, 90])
    return {"value": float(median), "p90": float(p90), "min": float(a.min()), "max": float(a.max()),
            "mean": float(a.mean()), "stdev": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "iqr": float(q75 - q25), "spread": float((p90 - a.min()) / median) if median else 0.0,
            "n": int(a.size)}


def spread_of(counts: list[int]) -> float:
    """Relative spread (max - min) / median of repeated counts."""
    a = np.asarray(counts, dtype=np.float64)
    med = float(np.median(a))
    return float((a.max() - a.min()) / med) if med else 0.0
