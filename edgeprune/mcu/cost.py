"""From instructions counted on the emulated Cortex-M to cycles and milliseconds.

QEMU does not model cycles (the DWT cycle counter reads 0), so the latency is an
estimate: ``instructions x cycles_per_instruction / clock``. The cycles per
instruction of each core are fitted on published measurements, kept as data in
``targets/calibration/mcu-<core>.toml`` (board, clock, model, figure, URL per row),
together with the fit's error band (the largest relative error over its rows).
``benchmarks/mcu.py --fit`` recounts the rows' models and refits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config_io import read_toml
from ..errors import ConfigError
from ..report.schema import figure

CALIBRATION_DIR = Path(__file__).resolve().parent.parent.parent / "targets" / "calibration"


@dataclass(frozen=True)
class McuCalibration:
    core: str
    kernels: str
    cycles_per_instruction: float
    error_band_rel: float
    rows: int
    fit: str
    path: Path


def calibration_path(core: str) -> Path:
    return CALIBRATION_DIR / f"mcu-{core}.toml"


def load_calibration(core: str) -> McuCalibration | None:
    """The core's calibration, or None when there is none (no estimate is made then)."""
    path = calibration_path(core)
    if not path.is_file():
        return None
    data = read_toml(path, what="microcontroller calibration")
    try:
        cal = McuCalibration(core=str(data["core"]), kernels=str(data["kernels"]),
                             cycles_per_instruction=float(data["cycles_per_instruction"]),
                             error_band_rel=float(data["error_band_rel"]),
                             rows=len(data.get("rows", [])), fit=str(data.get("fit", "")), path=path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the calibration lacks or mistypes {exc}", where=str(path),
                          expected="core, kernels, cycles_per_instruction, error_band_rel, [[rows]]",
                          fix="regenerate it with python benchmarks/mcu.py --fit") from None
    if cal.core != core or cal.cycles_per_instruction <= 0:
        raise ConfigError(f"core = {cal.core!r}, cycles_per_instruction = {cal.cycles_per_instruction}",
                          where=str(path), expected=f"core = {core!r} and a positive figure")
    return cal


def latency_estimate(instructions: float, clock_mhz: float, cal: McuCalibration,
                     kernels: str) -> dict:
    """The ``latency_estimate_ms`` figure (contract: threads, calibration, error_band)."""
    cycles = instructions * cal.cycles_per_instruction
    ms = cycles / (clock_mhz * 1e3)
    how = (f"max |estimate / published - 1| over the {cal.rows} rows of {cal.path.name} "
           f"({cal.fit})")
    note = ""
    if kernels != cal.kernels:
        note = (f"the calibration was fitted on {cal.kernels} kernels; for {kernels} kernels the "
                "band is not validated")
    return figure(round(ms, 6), "ms",
                  f"{int(instructions):,} instructions x {cal.cycles_per_instruction:.4g} cycles per "
                  f"instruction / {clock_mhz:g} MHz", method="estimated", threads=1,
                  calibration=f"targets/calibration/{cal.path.name}", instructions=int(instructions),
                  cycles=int(round(cycles)),
                  clock_mhz=clock_mhz,
                  error_band={"rel": cal.error_band_rel, "rows": cal.rows, "how": how},
                  **({"note": note} if note else {}))
