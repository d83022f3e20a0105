#!/usr/bin/env python3
"""Issue-2 figures on the reference model: float Keras baseline vs the final int8 TFLite.

Runs the whole export (`edgeprune export --target host`) through the Python API,
timing it, then measures in one process, interleaved so that machine noise hits
both alike:
  - the float baseline exported as float32 TFLite (no pruning), and
  - the deployed int8 TFLite from the export,
with the same LiteRT invoke loop (XNNPACK, 1 thread). Prints a table.

    python benchmarks/export_digits.py [--cold] [--rounds 7]

--cold trains the reference model from scratch (an empty cache) so the wall
time includes training, as on a user's first run.
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
    parser.add_argument("--cold", action="store_true", help="train the reference model from an empty cache")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds")
    args = parser.parse_args()
    if args.cold:
        os.environ["EDGEPRUNE_CACHE"] = tempfile.mkdtemp(prefix="edgeprune-bench-cache-")

    from edgeprune import reference
    from edgeprune.devices import RunRequest
    from edgeprune.devices.local import LocalDevice
    from edgeprune.export.tflite import to_tflite
    from edgeprune.measure.metrics import classification_metrics
    from edgeprune.measure.size import gzip_size
    from edgeprune.pipeline import ExportOptions, run_export

    out = Path(tempfile.mkdtemp(prefix="edgeprune-bench-"))
    t0 = time.perf_counter()
    result = run_export(ExportOptions(target="host", out_dir=out))
    wall = time.perf_counter() - t0
    report = result.report

    data = reference.load_data("digits")
    source = reference.load_model("digits", seed=report.seed)
    base_path = out / "baseline_float32.tflite"
    base_path.write_bytes(to_tflite(source.model, "float32"))
    int8_path = result.out_dir / "model_int8.tflite"

    device = LocalDevice()
    x = data.x_test
    lat = {"baseline float32 TFLite": [], "int8 TFLite (deployed)": []}
    paths = {"baseline float32 TFLite": base_path, "int8 TFLite (deployed)": int8_path}
    outputs = {}
    for _ in range(args.rounds):
        for name, path in paths.items():
            run = device.run(path, x, RunRequest(engine="litert", threads=1, delegate="xnnpack",
                                                 warmup=100, repeats=2000))
            lat[name].append(float(np.median(run.latency_ms)))
            outputs[name] = run.outputs
    keras_acc = report.artifacts[0].measurements["accuracy"]["value"]
    rows = []
    for name, path in paths.items():
        acc = classification_metrics(outputs[name], data.y_test, data.num_classes)["accuracy"]
        rows.append((name, path.stat().st_size, gzip_size(path.read_bytes()), acc, min(lat[name]),
                     float(np.median(lat[name]))))
    (b_name, b_raw, b_gz, b_acc, b_min, b_med), (i_name, i_raw, i_gz, i_acc, i_min, i_med) = rows

    print(f"\nreference model digits, target host, seed {report.seed}; float Keras baseline accuracy "
          f"{keras_acc:.4f} (tf_keras, {len(data.x_test)} test samples)\n")
    print(f"{'artifact':26} {'raw B':>8} {'gzip B':>8} {'accuracy':>9} {'min of medians ms':>18} "
          f"{'median ms':>10}")
    for name, raw, gz, acc, lmin, lmed in rows:
        print(f"{name:26} {raw:8d} {gz:8d} {acc:9.4f} {lmin:18.5f} {lmed:10.5f}")
    print()
    print(f"gzip size ratio (baseline / int8):   {b_gz / i_gz:.2f}x   (chasing >= 10x)")
    print(f"accuracy lost (Keras baseline - int8): {100 * (keras_acc - i_acc):.2f} points (chasing <= 1)")
    print(f"latency ratio (float / int8, medians over {args.rounds} interleaved rounds of 2000 invokes): "
          f"{b_med / i_med:.2f}x (chasing >= 2x)")
    print(f"whole export wall time: {wall:.1f} s{' (including training)' if args.cold else ''} "
          f"(chasing < 60 s on 2 cores); verdict {report.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
