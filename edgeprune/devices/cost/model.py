"""The latency model for emulated boards: instruction classes -> cycles -> milliseconds.

One thread: the instructions' cycles, plus the time to read the weights that do
not fit in the board's caches (they come from memory on every invoke)::

    cycles = sum over classes c of count[c] x cycles_per_class[c]
    ms(1)  = cycles / (clock_mhz x 1000)
             + max(0, weight_bytes - cache_bytes) / 1e6 x memory_ms_per_mb

``threads`` threads (Amdahl's law; the serial fraction s is fitted on published
1- to 4-thread figures)::

    ms(threads) = ms(1) x (s + (1 - s) / threads)

The counts are of the kernels the runtime picks for the emulated core (the
Cortex-A76's dot-product int8 kernels, the A53's and A72's multiply-long ones),
so the model is precision- and kernel-aware through the classes; the per-class
cycles are fitted per board on published figures (:mod:`.fit`).
"""

from __future__ import annotations

from typing import Mapping

from .classes import CLASSES


def thread_factor(threads: int, serial_fraction: float) -> float:
    """ms(threads) / ms(1)."""
    return serial_fraction + (1.0 - serial_fraction) / max(1, int(threads))


def cycles(by_class: Mapping[str, float], calibration) -> float:
    """Single-thread cycles for one invoke whose instructions are ``by_class``."""
    if calibration.cycles_per_instruction is not None:
        return float(sum(by_class.values())) * calibration.cycles_per_instruction
    return float(sum(by_class.get(c, 0) * calibration.cycles_per_class[c] for c in CLASSES))


def memory_ms(weight_bytes: int, calibration) -> float:
    """One thread's time to read the weights that do not fit in the caches (per invoke)."""
    return max(0, weight_bytes - calibration.cache_bytes) / 1e6 * calibration.memory_ms_per_mb


def estimate_ms(by_class: Mapping[str, float], calibration, threads: int,
                weight_bytes: int = 0) -> float:
    """Estimated wall time of one invoke on ``threads`` threads of the calibrated board."""
    one = cycles(by_class, calibration) / (calibration.clock_mhz * 1e3)
    return (one + memory_ms(weight_bytes, calibration)) * thread_factor(
        threads, calibration.serial_fraction)


def describe(calibration, threads: int) -> str:
    """E.g. ``"estimated, 4 threads, +-13% on 6 published figures (<calibration name>)"``."""
    if calibration.error_rel is None:
        band = "error unknown: no published figure for this board"
    else:
        band = (f"+-{calibration.error_rel:.0%} on {calibration.error_rows} published figure"
                f"{'s' if calibration.error_rows != 1 else ''}")
    name = f" ({calibration.name})" if calibration.name else ""
    return f"estimated, {threads} thread{'s' if threads != 1 else ''}, {band}{name}"


def op_estimate_ms(by_class: Mapping[str, float], op_weight_bytes: int, model_weight_bytes: int,
                   calibration, threads: int) -> float:
    """One operator's share: its instructions' time plus its part (by weight bytes) of the
    whole model's memory term (the cache holds some model's weights, not one op's)."""
    memory = memory_ms(model_weight_bytes, calibration) * (
        op_weight_bytes / model_weight_bytes if model_weight_bytes else 0.0)
    one = cycles(by_class, calibration) / (calibration.clock_mhz * 1e3) + memory
    return one * thread_factor(threads, calibration.serial_fraction)
