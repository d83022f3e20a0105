"""The report's ``latency_estimate_ms`` for an emulated run (contract in report/schema.py)."""

from __future__ import annotations

from ...report.schema import figure
from .model import describe, estimate_ms, memory_ms


def median_window(totals: list[int], by_class: list[dict[str, int]]) -> dict[str, int]:
    """The per-class counts of the window whose total is the median (the lower one of two)."""
    order = sorted(range(len(totals)), key=lambda i: totals[i])
    return by_class[order[(len(order) - 1) // 2]]


def latency_estimate(totals: list[int] | None, by_class: list[dict[str, int]] | None, profile,
                     weight_bytes: int = 0) -> dict | None:
    """The estimate for the profile's thread count, or None without counts or calibration.
    ``weight_bytes``: the model's constant bytes (:func:`.weights.weight_bytes`)."""
    cal = profile.calibration
    if cal is None or not totals:
        return None
    threads = profile.runtime.threads
    if by_class:
        counts = median_window(totals, by_class)
        how = "instructions by class x cycles per class"
    else:  # a device that counts no classes: only a one-CPI calibration applies
        if cal.cycles_per_instruction is None:
            return None
        counts = {"all": sorted(totals)[(len(totals) - 1) // 2]}
        how = "instructions x cycles per instruction"
    value = estimate_ms(counts, cal, threads, weight_bytes)
    band = {"rel": cal.error_rel, "rows": cal.error_rows, "how": cal.error_how or None}
    memory = (f" + {memory_ms(weight_bytes, cal):.3g} ms reading {weight_bytes / 1e6:.3g} MB of "
              f"weights past a {cal.cache_bytes // 1024} KiB cache" if cal.memory_ms_per_mb else "")
    return figure(round(value, 4), "ms",
                  f"{describe(cal, threads)}: ({how} / {cal.clock_mhz:g} MHz{memory}) x "
                  f"({cal.serial_fraction:g} + {1 - cal.serial_fraction:g}/{threads})",
                  method="estimated", threads=threads, weight_bytes=int(weight_bytes),
                  calibration=cal.name or cal.source or "profile calibration", error_band=band)
