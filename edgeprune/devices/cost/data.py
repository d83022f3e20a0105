"""The calibration data in ``targets/calibration/``: published figures and cached counts.

``xnnpack-raspberry-pi.toml``: one ``[[figure]]`` per published latency (fields
documented in the file). ``counts.json``: for each calibration model, precision
and emulated core, the instructions of one invoke by class, with the model
file's sha256 and the emulator that counted them (written by ``fit --recount``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...config_io import read_toml
from ...errors import ConfigError

CALIBRATION_DIR = Path(__file__).resolve().parents[3] / "targets" / "calibration"
FIGURES = CALIBRATION_DIR / "xnnpack-raspberry-pi.toml"
COUNTS = CALIBRATION_DIR / "counts.json"
BOARD_CORES = {"rpi3": "cortex-a53", "rpi4": "cortex-a72", "rpi5": "cortex-a76"}
Use = Literal["fit", "holdout", "check", "threads"]
_FIELDS = {"board": str, "board_name": str, "clock_mhz": float, "os_bits": int, "threads": int, "model": str,
           "precision": str, "ms": float, "use": str, "source": str, "section": str, "software": str}


@dataclass(frozen=True)
class Figure:
    board: str
    board_name: str
    clock_mhz: float
    os_bits: int
    threads: int
    model: str
    precision: str
    ms: float
    use: Use
    source: str
    section: str
    software: str

    @property
    def label(self) -> str:
        return f"{self.model} {self.precision} {self.threads}T {self.os_bits}-bit"


def load_figures(path: Path = FIGURES) -> list[Figure]:
    data = read_toml(path, what="calibration figures")
    out = []
    for i, row in enumerate(data.get("figure", [])):
        where = f"{path}: figure[{i}]"
        if set(row) != set(_FIELDS):
            raise ConfigError(f"fields {sorted(set(row) ^ set(_FIELDS))} missing or unknown",
                              where=where, expected=", ".join(_FIELDS))
        if row["use"] not in ("fit", "holdout", "check", "threads"):
            raise ConfigError(f"use = {row['use']!r}", where=where,
                              expected='"fit", "holdout", "check" or "threads"')
        out.append(Figure(**{k: _FIELDS[k](v) for k, v in row.items()}))
    return out


def load_counts(path: Path = COUNTS) -> dict:
    if not path.is_file():
        raise ConfigError("no cached calibration counts", where=str(path),
                          fix="run `python -m edgeprune.devices.cost.fit --recount`")
    return json.loads(path.read_text())


def save_counts(counts: dict, meta: dict, path: Path = COUNTS) -> None:
    path.write_text(json.dumps({"meta": meta, "counts": dict(sorted(counts.items()))},
                               indent=1, sort_keys=False) + "\n")
