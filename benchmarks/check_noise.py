#!/usr/bin/env python3
"""Does `edgeprune check` cry wolf under changing load, and what slowdown does it catch?

1. False alarms, per target (host, rpi4, cortex-m4): export a model once as the
   baseline (`--update-baseline`, which keeps its files), then N more times with the
   same seed (byte-identical files: only the load differs), with 0, 1 or 2 CPU burners
   during each export and, independently, during each check. Each rerun is checked
   with A/B re-measurement (the default) and with `--no-remeasure` (the fallback
   rule). Prints the stored-median ratio (what the old gate compared), the A/B ratio,
   both verdicts and the time `check` took. Then the same model with eight times the
   channels in its convolutions, which must fail (at twice the channels the int8 model's
   host latency grows by less than 10%: 3.13 -> 3.20 us here, the invoke's fixed cost
   dominating; at eight times, 3.1 -> 15.7 us).
2. Detection: real slowdowns planted as extra work in the file (a chain of
   FULLY_CONNECTED layers, 10 against 10 + k), A/B re-measured as `check` does, with
   and without a burner; the true ratio from a long quiet A/B run beside it.

    python benchmarks/check_noise.py [--reruns 10] [--trials 5] [--targets host rpi4 cortex-m4]
        [--model cnn|digits]

`--model digits` uses the reference model (six artifacts for host, slower).
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

RECIPE = 'quantize = ["int8"]\nformats = ["tflite"]\ntflite_sparse_encoding = "never"\n'


class Burners:
    """``n`` processes spinning on the CPU while the block runs."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(self.n)]
        time.sleep(0.2 if self.n else 0)

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # burners stop with us
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=10)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--targets", nargs="*", default=["host", "rpi4", "cortex-m4"])
    parser.add_argument("--model", choices=["cnn", "digits"], default="cnn")
    parser.add_argument("--skip-detection", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="edgeprune-check-noise-"))
    models = _models(root, args.model)
    summary = []
    for target in args.targets:
        summary.append(false_alarms(root, models, target, args.reruns))
    print("\nfalse alarms (verdict FAIL on byte-identical files), per target:")
    for target, ab, fallback, seconds in summary:
        print(f"  {target:10s} A/B {ab}   fallback (--no-remeasure) {fallback}   "
              f"check time median {seconds:.1f} s")
    if not args.skip_detection:
        detection(root, args.trials)
        fallback_detection(root, args.trials)
    return 0


def _models(root: Path, kind: str) -> dict:
    if kind == "digits":
        return {"same": None, "wide": None, "data": None, "recipe": None}
    from quadrants import quadrant_cnn, quadrants

    from edgeprune import keras_env

    keras = keras_env.keras()
    (x_train, y_train), (x_test, y_test) = quadrants(256, 0), quadrants(24, 1)
    np.savez(root / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (root / "recipe.toml").write_text(RECIPE)
    out = {"data": root / "data.npz", "recipe": root / "recipe.toml"}
    for name, channels in (("same", 8), ("wide", 64)):
        path = root / f"cnn{channels}.keras"
        quadrant_cnn(keras, channels, train=(x_train, y_train)).save(path)
        out[name] = str(path)
    return out


def _export(root: Path, models: dict, which: str, target: str, out: str) -> Path:
    from edgeprune.pipeline import ExportOptions, run_export

    opts = ExportOptions(target=target, out_dir=root / out, model=models[which],
                         data=models["data"], recipe=models["recipe"],
                         finetune_epochs=0 if models["data"] else None)
    return run_export(opts).out_dir / "report.json"


def false_alarms(root: Path, models: dict, target: str, reruns: int):
    from edgeprune.check import check_files, update_baseline

    base = _export(root, models, "same", target, f"{target}-base")
    baseline = root / "baselines" / f"{target}.json"
    update_baseline(base, baseline)
    print(f"\n== {target}: {reruns} reruns of the same model against its baseline")
    print(f"{'run':>3} {'burners':>8} {'stored':>7} {'A/B':>7} {'verdict':>8} "
          f"{'fallback':>8} {'check s':>8}  regressed rows")
    fails_ab = fails_fb = 0
    seconds = []
    for i in range(reruns):
        export_load, check_load = i % 3, (i + 1) % 2
        with Burners(export_load):
            report = _export(root, models, "same", target, f"{target}-run{i}")
        with Burners(check_load):
            result = check_files(report, baseline)
            fallback = check_files(report, baseline, remeasure=False)
        seconds.append(result.seconds)
        fails_ab += not result.passed
        fails_fb += not fallback.passed
        stored, ab = _ratios(result, fallback)
        print(f"{i + 1:>3} {export_load:>3}/{check_load:<4} {stored:>7} {ab:>7} "
              f"{result.verdict:>8} {fallback.verdict:>8} {result.seconds:>8.1f}  "
              + ", ".join(f"{r.artifact}/{r.figure}" for r in result.regressions + fallback.regressions))
    wide = _export(root, models, "wide", target, f"{target}-wide") if models["wide"] else None
    if wide is not None:
        result = check_files(wide, baseline)
        print(f"eight times the channels: {result.verdict.upper()}: "
              + ", ".join(f"{r.artifact}/{r.figure} {r.delta_text}" for r in result.regressions))
    return target, f"{fails_ab}/{reruns}", f"{fails_fb}/{reruns}", float(np.median(seconds))


def _ratios(result, fallback) -> tuple[str, str]:
    """The ratio of the stored medians (what a gate on stored samples compares) and the
    A/B ratio measured by the check; for a non-host target, its host time (shown only)."""
    def first(res, figure):
        return next((r for r in res.rows if r.figure == figure), None)

    host = first(result, "host_latency_ms")
    if host is not None:
        return f"{host.value / host.baseline:.3f}", "-"
    ab, stored = first(result, "latency_ms"), first(fallback, "latency_ms")
    if ab is None:
        return "-", "-"
    return (f"{stored.value / stored.baseline:.3f}",
            f"{ab.delta_rel + 1:.3f}" if ab.detail.startswith("A/B") else "-")


def detection(root: Path, trials: int) -> None:
    from tflite_chain import fc_chain

    from edgeprune.check.latency import decide_ab
    from edgeprune.check.models import Target
    from edgeprune.check.remeasure import Remeasure

    width, base_layers = 256, 10
    files = {k: fc_chain(root / f"fc{base_layers + k}.tflite", layers=base_layers + k,
                         width=width, inputs=width) for k in (0, 1, 2, 3, 5)}
    target = Target(name="host", engine="litert", threads=1, delegate="xnnpack",
                    device_kind="local")
    remeasure = Remeasure(root, None)
    long_run = Remeasure(root, None, pairs=60)
    print(f"\n== detection: FULLY_CONNECTED {width}x{width} chains, {base_layers} layers "
          f"against {base_layers} + k, latency_rel 0.10, {trials} checks each")
    print(f"{'k':>2} {'true ratio':>10} {'caught quiet':>13} {'caught burner':>14} "
          f"{'A/B ratios (quiet; burner)':>30}")
    for k, path in files.items():
        true = math.exp(np.median([math.log(b / a) for a, b in
                                   long_run.run(target, "tflite", files[0], path)["pairs"]]))
        caught, ratios = [], []
        for burners in (0, 1):
            with Burners(burners):
                verdicts = [decide_ab({**remeasure.run(target, "tflite", files[0], path),
                                       "found": ""}, 0.10) for _ in range(trials)]
            caught.append(sum(v["verdict"] == "regressed" for v in verdicts))
            ratios.append(" ".join(f"{v['delta_rel'] + 1:.2f}" for v in verdicts))
        print(f"{k:>2} {true:>10.3f} {caught[0]:>9}/{trials} {caught[1]:>10}/{trials}  "
              f"{ratios[0]}; {ratios[1]}")


def fallback_detection(root: Path, trials: int) -> None:
    """The fallback rule (no baseline file: control-normalised times of two exports) on
    the same chains: each trial times the baseline and the planted file as an export
    does, each under its own load (0, 1 or 2 burners)."""
    from types import SimpleNamespace

    from edgeprune.check.latency import decide_control
    from edgeprune.check.models import Control
    from edgeprune.devices.base import RunRequest
    from edgeprune.devices.local import LocalDevice
    from edgeprune.measure.artifacts import CONTROL, HOST_REQUEST

    width = 256
    x = np.random.default_rng(0).random((2, width), dtype=np.float32)
    request = RunRequest(engine="litert", **HOST_REQUEST, **CONTROL)

    def export_like(path: Path, burners: int):
        with Burners(burners):
            run = LocalDevice().run(path, x, request)
        return SimpleNamespace(value=float(np.median(run.latency_ms)),
                               control=Control.model_validate(run.extra["control"]))

    print("\n== the fallback rule (--no-remeasure), same chains, each run under 0-2 burners")
    print(f"{'k':>2} {'caught':>7}  normalised ratios (stored-median ratios)")
    for k in (0, 2, 5, 10):
        path = root / f"fc{10 + k}.tflite"
        if not path.exists():
            from tflite_chain import fc_chain

            fc_chain(path, layers=10 + k, width=width, inputs=width)
        decisions = [decide_control(export_like(root / "fc10.tflite", i % 3),
                                    export_like(path, (i + 1) % 3), 0.10, "no A/B")
                     for i in range(trials)]
        print(f"{k:>2} {sum(d['verdict'] == 'regressed' for d in decisions):>4}/{trials}  "
              + " ".join(f"{d['delta_rel'] + 1:.2f} ({d['value'] / d['baseline']:.2f})"
                         for d in decisions))


if __name__ == "__main__":
    sys.exit(main())
