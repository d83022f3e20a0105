#!/usr/bin/env python3
"""Issue-5 figures: does `edgeprune check` raise false alarms on noise-only reruns, and does
it catch planted regressions?

Exports the reference model for `host` once as the baseline, then N more times with the
same seed (byte-identical files: only the machine's noise differs), checking each rerun
against the baseline with the target's tolerances. Then plants, on a copy of the baseline
report, latency regressions on int8.tflite (every sample x 1.10, and x 1.20) and a 1-byte
size regression, and checks those. Prints a table and the time `check` takes.

    python benchmarks/check_noise.py [--reruns 10]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=10)
    args = parser.parse_args()

    from edgeprune.check import check_reports
    from edgeprune.pipeline import ExportOptions, run_export

    root = Path(tempfile.mkdtemp(prefix="edgeprune-check-noise-"))
    baseline = run_export(ExportOptions(target="host", out_dir=root / "base")).report.to_dict()
    print(f"{'rerun':>6} {'verdict':>8} {'regressed rows':>15}  latency median ratios (int8.tflite)")
    passes = 0
    timings = []
    for i in range(args.reruns):
        report = run_export(ExportOptions(target="host", out_dir=root / f"run{i}")).report.to_dict()
        t0 = time.perf_counter()
        result = check_reports(report, baseline)
        timings.append(time.perf_counter() - t0)
        regressed = [r for r in result.rows if r.failed]
        ratio = _ratio(report, baseline, "int8.tflite")
        passes += not regressed
        print(f"{i + 1:>6} {'pass' if not regressed else 'ALARM':>8} {len(regressed):>15}  {ratio:.3f}  "
              + ", ".join(f"{r.artifact}/{r.figure}" for r in regressed))
    print(f"\nnoise-only reruns without a false alarm: {passes} / {args.reruns}")

    for label, plant, overrides in (
            ("10% latency regression, profile tolerance (latency_rel 0.10)", _slower(1.10), None),
            ("10% latency regression, --latency-rel 0.05", _slower(1.10), {"latency_rel": 0.05}),
            ("20% latency regression, profile tolerance (latency_rel 0.10)", _slower(1.20), None),
            ("1-byte size regression", _bigger, None)):
        planted = plant(copy.deepcopy(baseline))
        result = check_reports(planted, baseline, overrides=overrides)
        caught = [f"{r.artifact}/{r.figure}" for r in result.rows if r.failed]
        print(f"{label} on int8.tflite: {'CAUGHT ' + ', '.join(caught) if caught else 'missed'}")
    print(f"check time per report (comparison only): median {sorted(timings)[len(timings) // 2] * 1000:.1f} ms")
    return 0


def _art(report, name):
    return next(a for a in report["artifacts"] if a["name"] == name)


def _ratio(report, baseline, name):
    return _art(report, name)["measurements"]["latency_ms"]["value"] / \
        _art(baseline, name)["measurements"]["latency_ms"]["value"]


def _slower(factor):
    def plant(report):
        lat = _art(report, "int8.tflite")["measurements"]["latency_ms"]
        lat["samples"] = [s * factor for s in lat["samples"]]
        lat["value"] *= factor
        return report
    return plant


def _bigger(report):
    _art(report, "int8.tflite")["measurements"]["size_bytes"]["value"] += 1
    return report


if __name__ == "__main__":
    sys.exit(main())
