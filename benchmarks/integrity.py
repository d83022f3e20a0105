#!/usr/bin/env python3
"""Is every exported file the model it claims, and does the default ship a usable one?

On the five model kinds of benchmarks/zoo.py (trained here, cached in --work):

- every kind (resnet8, dscnn, vww, ad, mbv2): `edgeprune export MODEL --data DATA --target host`
  with the default recipe, once with --no-backoff ("before") and once as a user runs it
  ("after": the quality back-off on); the exit code and the deployed file's task metric
  of each; per artifact of the "before" run, its encoding, its agreement with its parent
  (nrmse, top-1 for classifiers), sparse vs dense (max |diff| of the two encodings on 256
  test samples), and each ONNX file's metric next to its TFLite sibling's;
- the autoencoder (ad) the same way: its float targets make it a regression task, whose
  metric is the reconstruction error (MSE, lower is better) and whose quality budget is
  max_metric_drop;
- every kind: the float32 and int8 .onnx exported in two processes (string hashing seeded
  1 and 2), compared byte for byte;
- with --board rpi4: the deployed int8.tflite's outputs on an emulated Cortex-A72 (qemu)
  against this machine's, in output quantization steps.

Not run by CI; each classifier takes a few minutes on two cores.

    python benchmarks/integrity.py [--kinds resnet8,dscnn,vww,ad,mbv2] [--work DIR] [--board rpi4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ONNX_SCRIPT = r'''
import sys
from pathlib import Path
import numpy as np
from edgeprune import keras_env
from edgeprune.pipeline import export_artifacts
from edgeprune.targets import load_target
from edgeprune.types import CompressedModel, Dataset, SourceModel

keras = keras_env.keras()
model = keras.models.load_model(sys.argv[1], compile=False)
d = np.load(sys.argv[2])
shape = tuple(d["x_train"].shape[1:])
data = Dataset(d["x_train"], d["y_train"], d["x_train"][:1], d["y_train"][:1], d["x_test"], d["y_test"],
               2, "zoo", "x")
out = Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
export_artifacts(CompressedModel(model, None), load_target("host"), data, SourceModel(model, shape, 2, "zoo", "x"),
                 out, lambda m: None, names=["float32.onnx", "int8.onnx"])
'''


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def prepare(kind: str, work: Path) -> Path:
    folder = work / kind
    if (folder / "model.keras").is_file():
        return folder
    from edgeprune import keras_env

    import zoo

    folder.mkdir(parents=True, exist_ok=True)
    model, arrays = zoo.trained(kind, keras_env.keras())
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", **arrays)
    return folder


def export(folder: Path, out: str, *extra: str) -> tuple[int, dict | None]:
    cmd = [sys.executable, "-m", "edgeprune", "export", str(folder / "model.keras"), "--data",
           str(folder / "data.npz"), "--target", "host", "--out", str(folder / out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    (folder / f"{out}.log").write_text(proc.stdout + "\n" + proc.stderr)
    report = folder / out / "host" / "report.json"
    return proc.returncode, json.loads(report.read_text()) if report.is_file() else None


def onnx_two_processes(folder: Path) -> dict[str, str]:
    procs = {}
    for seed in ("1", "2"):
        procs[seed] = subprocess.Popen(
            [sys.executable, "-c", ONNX_SCRIPT, str(folder / "model.keras"), str(folder / "data.npz"),
             str(folder / f"onnx-{seed}")], env=_env(PYTHONHASHSEED=seed),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in procs.values():
        _, err = proc.communicate()
        if proc.returncode:
            return {"error": err.strip().splitlines()[-1]}
    out = {}
    for name in ("model_float32.onnx", "model_int8.onnx"):
        a, b = ((folder / f"onnx-{s}" / name).read_bytes() for s in ("1", "2"))
        out[name] = f"{'identical' if a == b else 'DIFFER'} ({len(a):,} / {len(b):,} B)"
    return out


def _metric(measurements: dict) -> float:
    """The task's primary metric: accuracy for a classifier, MSE for a regression."""
    return (measurements.get("accuracy") or measurements["mse"])["value"]


def _deployed(report: dict | None) -> str:
    if report is None:
        return "no report"
    deploy = next(a for a in report["artifacts"] if a["name"] == report["deploy"])
    acc = _metric(deploy["measurements"])
    base = _metric(report["artifacts"][0]["measurements"])
    chosen = (report["compression"].get("backoff") or {}).get("chosen")
    return f"{acc:.4f} (baseline {base:.4f})" + (f", back-off chose {chosen!r}" if chosen else "")


def artifact_rows(report: dict) -> list[str]:
    rows = []
    accuracy = {a["name"]: _metric(a["measurements"]) for a in report["artifacts"]}
    for art in report["artifacts"][2:]:
        m = art["measurements"]
        checks = {c["against"]: c for c in m["integrity"]["checks"]}
        parent = next((c for k, c in checks.items() if k not in ("dense encoding",)
                       and not k.startswith("this machine")), {})
        enc = checks.get("dense encoding")
        sparse = (("bit-exact" if enc["max_abs_diff"] == 0 else f"max |diff| {enc['max_abs_diff']:.3g}")
                  if enc else f"not compared ({art['settings'].get('encoding_reason', '')[:100]})"
                  if art["format"] == "tflite" else "-")
        sibling = ""
        if art["format"] == "onnx":
            twin = art["name"].replace(".onnx", ".tflite")
            if twin in accuracy:
                sibling = f"{accuracy[art['name']] - accuracy[twin]:+.4f} vs {twin}"
        gap = m.get("sibling_gap", {})
        flag = " FLAGGED" if gap.get("flagged") else ""
        rows.append(f"  {art['name']:15} {art['encoding']:6} acc {accuracy[art['name']]:.4f}  "
                    f"vs {parent.get('against', '?')}: nrmse {parent.get('nrmse', float('nan')):.2g} "
                    f"top-1 {parent.get('top1_agreement', float('nan')):.4f}  sparse=dense: {sparse}  "
                    f"{sibling}{flag}  integrity {'ok' if m['integrity']['passed'] else 'FAILED'}")
    return rows


def board_agreement(report: dict, folder: Path, board: str) -> str:
    from edgeprune.devices import RunRequest, device_for
    from edgeprune.devices.local import LocalDevice
    from edgeprune.integrity import output_step
    from edgeprune.targets import load_target

    deploy = next(a for a in report["artifacts"] if a["name"] == report["deploy"])
    path = folder / "before" / "host" / deploy["file"]
    x = np.load(folder / "data.npz")["x_test"][:100]
    lines = []
    for delegate in ("xnnpack", "none"):
        req = RunRequest("litert", delegate=delegate, warmup=0, repeats=1)
        host = LocalDevice().run(path, x, req).outputs
        dev = device_for(load_target(board)).run(path, x, req).outputs
        step = output_step(path)
        diff = np.abs(host - dev)
        nrmse = float(np.sqrt(np.mean(diff ** 2)) / np.std(host))
        lines.append(f"{delegate}: max |diff| {diff.max():.3g} = {diff.max() / step:.1f} steps, nrmse {nrmse:.3g}, "
                     f"{np.mean(diff > 0):.1%} of outputs differ, top-1 agreement "
                     f"{np.mean(host.argmax(1) == dev.argmax(1)):.4f}")
    return "; ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="resnet8,dscnn,vww,ad,mbv2")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgeprune-integrity"))
    parser.add_argument("--board", default=None, help="an emulated board target, e.g. rpi4")
    args = parser.parse_args()
    for kind in args.kinds.split(","):
        folder = prepare(kind, args.work)
        print(f"== {kind}")
        before_rc, before = export(folder, "before", "--no-backoff")
        after_rc, after = export(folder, "after")
        print(f"  default recipe, --no-backoff: exit {before_rc}, deployed metric {_deployed(before)}")
        print(f"  default recipe (back-off):    exit {after_rc}, deployed metric {_deployed(after)}")
        if after and after["compression"]["backoff"].get("ran"):
            for attempt in after["compression"]["backoff"]["attempts"]:
                print(f"    {attempt['label']:22} {attempt['state']:32} metric {attempt['metric']}"
                      f" {attempt['seconds']:.0f} s {attempt['note']}")
        if before:
            for row in artifact_rows(before):
                print(row)
            if args.board:
                print(f"  {args.board} vs this machine, deployed int8: "
                      f"{board_agreement(before, folder, args.board)}")
        for name, verdict in onnx_two_processes(folder).items():
            print(f"  two processes, {name}: {verdict}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
