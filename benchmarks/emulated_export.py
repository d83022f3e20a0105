#!/usr/bin/env python3
"""Wall time of `edgeprune export --target rpi4` (emulated) against `--target host`.

Goal: an emulated export within 3x the time of the host export of the same model. For
the reference model (digits) and for tf_keras MobileNetV2 alpha 0.35 at 96x96
(weights=None, trained one epoch on deterministic random data, passed as a .keras
file with --data .npz), runs the CLI as a user would, once per target, and prints
the wall times, their ratio, and the deploy artifact's latency figures.

    python benchmarks/emulated_export.py [--only reference|mobilenet] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def mobilenet_files(folder: Path) -> tuple[Path, Path]:
    """MobileNetV2 0.35 at 96x96, 10 classes, trained briefly; and its data."""
    from edgeprune import keras_env

    keras = keras_env.keras()
    keras_env.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((640, 96, 96, 3), dtype=np.float32)
    y = rng.integers(0, 10, 640)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                           classes=10)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x[:512], y[:512], epochs=1, batch_size=64, verbose=0)
    path, data = folder / "mobilenet_v2_035_96.keras", folder / "mobilenet_v2_035_96.npz"
    model.save(path)
    np.savez(data, x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    return path, data


def export(args: list[str], target: str, out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "edgeprune", "export", *args, "--target", target, "--out", str(out),
           "--json"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def deploy_latency(report: dict) -> str:
    art = next(a for a in report["artifacts"] if a["name"] == report["deploy"])
    m = art["measurements"]
    if "latency_estimate_ms" in m:
        return f"{m['latency_estimate_ms']['value']:.3f} ms ({m['latency_estimate_ms']['by']})"
    return f"{m['latency_ms']['value']:.3f} ms measured ({m['latency_ms']['by']})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("reference", "mobilenet"))
    parser.add_argument("--keep", type=Path, help="keep the exports in this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgeprune-emulated-export-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = []
    if args.only in (None, "reference"):
        cases.append(("reference model (digits)", []))
    if args.only in (None, "mobilenet"):
        model, data = mobilenet_files(work)
        cases.append(("MobileNetV2 0.35 96x96", [str(model), "--data", str(data)]))
    print(f"{'model':28} {'host s':>8} {'rpi4 s':>8} {'ratio':>6}  rpi4 deploy latency")
    for label, extra in cases:
        host_s, _ = export(extra, "host", work / f"host-{len(extra)}")
        rpi_s, report = export(extra, "rpi4", work / f"rpi4-{len(extra)}")
        print(f"{label:28} {host_s:8.1f} {rpi_s:8.1f} {rpi_s / host_s:6.2f}  {deploy_latency(report)}")
    print(f"\nexports in {work}; {os.cpu_count()} CPUs on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
