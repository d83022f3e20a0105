"""Count the calibration MobileNets under qemu again and rewrite ``counts.json``.

Run it when the emulator root changes what it counts (a new ai-edge-litert, QEMU or
plugin): ``python -m edgeprune.devices.cost.fit --recount``. The converted models go to
``<edgeprune cache>/calibration-models`` (or ``--models``), about 60 MB, reused.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from .data import save_counts
from .mobilenets import CORES, MODELS, PRECISIONS, REPRESENTATIVE_SAMPLES, SEED, SIZE, count_all


def recount(models: Path | None = None, log=print) -> dict:
    from ..qemu_root import PLUGIN_SOURCE, cache_dir, prepare_root, qemu_version, wheel_pins

    folder = models or cache_dir() / "calibration-models"
    root = prepare_root(log=log)
    started = time.monotonic()
    log(f"counting {len(MODELS)} models x {len(PRECISIONS)} precisions x {len(CORES)} cores "
        f"under qemu (models in {folder})")
    counts = count_all(folder, log=log)
    meta = {"what": "instructions of one invoke (the last of two timed windows, after one "
                    "warm-up), by class, of tf_keras.applications MobileNets at "
                    f"{SIZE}x{SIZE} (weights=None, seed {SEED}), float32 and full int8 "
                    f"({REPRESENTATIVE_SAMPLES} seeded random representative samples)",
            "command": "python -m edgeprune.devices.cost.fit --recount",
            "wheels": wheel_pins(), "qemu": qemu_version(), "emulator_root": root.name,
            "plugin_sha256": hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()}
    save_counts(counts, meta)
    log(f"counted in {time.monotonic() - started:.0f}s")
    return counts
