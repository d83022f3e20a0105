#!/usr/bin/env python3
"""Issue-3 figures: the reference model's artifacts on the emulated boards and MCU targets.

Exports the reference model for `host` (or reuses --export DIR, a folder holding
model_float32.tflite, model_int8.tflite, model_float32.onnx, model_int8.onnx), then
with `edgeprune bench`'s code measures, three times each:
  - float32 and int8 TFLite on rpi3 (cortex-a53), rpi4 (cortex-a72), rpi5 (cortex-a76):
    guest instructions per invoke (QEMU TCG plugin), their spread over the three runs,
    the board's latency estimate (profile threads, calibration error band), and the
    int8/float ratios of instructions and of estimates;
  - float32 and int8 ONNX on jetson-orin (ONNX Runtime, cortex-a76 emulated);
  - int8 TFLite on cortex-m4 / cortex-m7: the smallest arena found by measurement,
    and the flash the model takes;
  - the time to prepare the emulated root from nothing (--cold) and from cache.

    python benchmarks/devices.py [--export DIR] [--cold]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="a host export folder to reuse")
    parser.add_argument("--cold", action="store_true", help="prepare the emulated root in an empty cache")
    args = parser.parse_args()

    from edgeprune.bench import bench_artifact
    from edgeprune.devices.qemu_root import prepare_root

    quiet = lambda msg: None  # noqa: E731
    prep = {}
    if args.cold:
        os.environ["EDGEPRUNE_CACHE"] = tempfile.mkdtemp(prefix="edgeprune-bench-cache-")
        t0 = time.perf_counter()
        prepare_root(log=quiet)
        prep["from nothing"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepare_root(log=quiet)
    prep["from cache"] = time.perf_counter() - t0

    folder = args.export
    if folder is None:
        from edgeprune.pipeline import ExportOptions, run_export

        folder = run_export(ExportOptions(target="host", out_dir=Path(tempfile.mkdtemp()))).out_dir

    print(f"\nartifacts from {folder}\n")
    print(f"{'target':12} {'artifact':20} {'instructions/invoke (3 runs)':>44} {'spread':>8} "
          f"{'estimate ms':>12}  estimate")
    per = {}
    for target in ("rpi3", "rpi4", "rpi5"):
        for name in ("model_float32.tflite", "model_int8.tflite"):
            per[(target, name)] = _three(bench_artifact, folder / name, target, quiet)
    for name in ("model_float32.onnx", "model_int8.onnx"):
        per[("jetson-orin", name)] = _three(bench_artifact, folder / name, "jetson-orin", quiet)
    for (target, name), runs in per.items():
        counts = [r["instructions_per_invoke"]["value"] for r in runs]
        spread = (max(counts) - min(counts)) / float(np.median(counts))
        est = runs[0].get("latency_estimate_ms", {})
        value = est.get("value")
        print(f"{target:12} {name:20} {', '.join(f'{c:,}' for c in counts):>44} {spread:8.2%} "
              f"{value if value is None else round(value, 4)!s:>12}  {est.get('by', '-')[:60]}")
    print()
    for target in ("rpi3", "rpi4", "rpi5"):
        f = np.median([r["instructions_per_invoke"]["value"] for r in per[(target, "model_float32.tflite")]])
        q = np.median([r["instructions_per_invoke"]["value"] for r in per[(target, "model_int8.tflite")]])
        ef, eq = (per[(target, n)][0]["latency_estimate_ms"]["value"]
                  for n in ("model_float32.tflite", "model_int8.tflite"))
        print(f"{target}: int8 / float32 instructions = {q / f:.3f}, estimated latency = {eq / ef:.3f}")
    f = np.median([r["instructions_per_invoke"]["value"] for r in per[("jetson-orin", "model_float32.onnx")]])
    q = np.median([r["instructions_per_invoke"]["value"] for r in per[("jetson-orin", "model_int8.onnx")]])
    print(f"jetson-orin (onnxruntime): int8 / float32 instructions = {q / f:.3f}")
    print()
    for target in ("cortex-m4", "cortex-m7"):
        r = bench_artifact(folder / "model_int8.tflite", target, log=quiet)
        print(f"{target}: arena {r['arena_bytes']:,} bytes (smallest that works, measured), "
              f"flash (model) {r['size_bytes']:,} bytes")
    print()
    for label, seconds in prep.items():
        print(f"prepare emulated root {label}: {seconds:.1f} s")
    return 0


def _three(bench, path, target, log):
    return [bench(path, target, log=log) for _ in range(3)]


if __name__ == "__main__":
    sys.exit(main())
