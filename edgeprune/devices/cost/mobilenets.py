"""The calibration models: tf_keras MobileNet v1/v2/v3 at 224x224, float32 and full int8,
counted under qemu on each emulated core.

The published figures (``targets/calibration/xnnpack-raspberry-pi.toml``) are for
MobileNets with random weights; latency does not depend on weight values, so the
models here are ``tf_keras.applications`` ones built with ``weights=None`` (nothing
is downloaded), seeded, and converted with the TFLite converter: float32 as is,
int8 fully quantized (per-channel weights, float input and output) on a seeded
random representative set. Their instruction counts are deterministic, so they
are kept in the repository (``counts.json``) and the fit runs in seconds;
``python -m edgeprune.devices.cost.fit --recount`` counts them again (about
half an hour on two cores: 8 models x 3 cores under emulation).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MODELS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
PRECISIONS = ("float32", "int8")
CORES = {"cortex-a53": "rpi3", "cortex-a72": "rpi4", "cortex-a76": "rpi5"}  # core -> its board
SEED = 0
REPRESENTATIVE_SAMPLES = 8
SIZE = 224


def build(name: str):
    """The tf_keras model, untrained (random weights, seeded): what XNNPACK's benchmark runs."""
    from ... import keras_env

    keras = keras_env.keras()
    keras_env.set_seed(SEED)
    apps = keras.applications
    shape = (SIZE, SIZE, 3)
    makers = {
        "mobilenet_v1": lambda: apps.MobileNet(input_shape=shape, alpha=1.0, weights=None),
        "mobilenet_v2": lambda: apps.MobileNetV2(input_shape=shape, alpha=1.0, weights=None),
        "mobilenet_v3_large": lambda: apps.MobileNetV3Large(input_shape=shape, weights=None),
        "mobilenet_v3_small": lambda: apps.MobileNetV3Small(input_shape=shape, weights=None),
    }
    return makers[name]()


def artifact(name: str, precision: str, folder: Path) -> Path:
    """The .tflite for ``name`` at ``precision`` in ``folder`` (converted once, then reused)."""
    from ...export.tflite import to_tflite

    path = folder / f"{name}_{precision}.tflite"
    if not path.is_file():
        representative = np.random.default_rng(SEED).random(
            (REPRESENTATIVE_SAMPLES, SIZE, SIZE, 3), dtype=np.float32) * 2.0 - 1.0
        data = to_tflite(build(name), precision,
                         representative=representative if precision == "int8" else None)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        tmp.write_bytes(data)
        tmp.rename(path)
    return path


def count(path: Path, core: str) -> dict:
    """Instructions of one invoke of ``path`` on ``core`` (the last of two timed windows)."""
    from ...targets import load_target
    from ..base import RunRequest
    from ..qemu import QemuDevice
    from .weights import weight_bytes

    device = QemuDevice(load_target(CORES[core]), timeout_s=3600)
    x = np.zeros((1, SIZE, SIZE, 3), np.float32)
    run = device.run(path, x, RunRequest(engine="litert", warmup=1, repeats=2))
    return {"instructions": int(run.instructions_per_invoke[-1]),
            "by_class": {k: int(v) for k, v in run.instructions_by_class[-1].items()},
            "windows": [int(w) for w in run.instructions_per_invoke],
            "weight_bytes": weight_bytes(path), "runtime": run.runtime, "by": run.instructions_by,
            "tflite_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def count_all(folder: Path, cores=tuple(CORES), models=MODELS, precisions=PRECISIONS,
              log=print) -> dict[str, dict]:
    """Every model x precision x core, emulated jobs in parallel (one per host CPU)."""
    from ..qemu_guest import parallel_jobs

    paths = {(m, p): artifact(m, p, folder) for m in models for p in precisions}
    jobs = [(m, p, c) for c in cores for m in models for p in precisions]

    def one(job):
        m, p, c = job
        result = count(paths[(m, p)], c)
        log(f"  counted {m} {p} on {c}: {result['instructions']:,} instructions")
        return key(m, p, c), result

    with ThreadPoolExecutor(max_workers=parallel_jobs()) as pool:
        return dict(pool.map(one, jobs))


def key(model: str, precision: str, core: str) -> str:
    return f"{model}/{precision}/{core}"
