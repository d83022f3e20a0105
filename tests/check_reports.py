"""Reports for the tests of `edgeprune check`, built as `edgeprune export` writes them
(edgeprune/report/schema.py). Latency samples come from a seeded lognormal; the
control workload's blocks (the fallback rule's input) scale with a ``load`` factor,
as a busier machine slows both the model and the control."""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import numpy as np

from edgeprune.report.schema import SCHEMA_VERSION, figure

# What a target profile would carry into the report (targets.Tolerances fields). The
# latency tolerance is 5% here so that a planted 10% shift is clearly beyond it.
PROFILE_TOLERANCES = {"size_bytes_rel": 0.0, "accuracy_points": 0.5, "f1_points": 0.5,
                      "latency_rel": 0.05, "instructions_rel": 0.01, "arena_bytes_rel": 0.0}

ARTIFACTS = {  # name -> (format, precision, size_bytes, median latency ms, instructions)
    "float32.tflite": ("tflite", "float32", 48_212, 0.41, 1_912_000),
    "int8.tflite": ("tflite", "int8", 14_876, 0.23, 1_204_118),
    "int8.onnx": ("onnx", "int8", 16_410, 0.35, None),
}
BY = "litert 2.3.0 on local x86_64"


def control(median_ms: float, seed: int, load: float = 1.0, pairs: int = 16) -> dict:
    """The control workload's blocks beside the model: [[control ms, model ms], ...]."""
    rng = np.random.default_rng(seed + 7)
    noise = np.exp(0.04 * rng.standard_normal((pairs, 2)))
    blocks = [[round(0.05 * load * a, 7), round(median_ms * load * b, 7)] for a, b in noise]
    return {"workload": "numpy: 3 float32 48x48 matrix products", "pairs": blocks,
            "block_invokes": [200, 40], "block_ms": 10.0}


def latency_figure(median_ms: float, seed: int, n: int = 200, sigma: float = 0.15,
                   load: float = 1.0, by: str = BY) -> dict:
    """Latency as a shared machine gives it: lognormal around the median, 3% of invokes
    hit by contention (1.5x to 4x slower), everything times ``load``."""
    rng = np.random.default_rng(seed)
    samples = median_ms * load * np.exp(sigma * rng.standard_normal(n))
    hit = rng.random(n) < 0.03
    samples[hit] *= rng.uniform(1.5, 4.0, hit.sum())
    s = np.sort(samples)
    return figure(float(np.median(s)), "ms", by,
                  p90=float(np.percentile(s, 90)), min=float(s[0]), max=float(s[-1]),
                  mean=float(s.mean()), stdev=float(s.std(ddof=1)),
                  iqr=float(np.subtract(*np.percentile(s, [75, 25]))), n=n,
                  samples=samples.round(6).tolist(), control=control(median_ms, seed, load))


def make_report(target: str = "host", *, seed: int = 0, tolerances: dict | None = None,
                latency_scale: float = 1.0, load: float = 1.0) -> dict:
    """A report.json as `edgeprune export` writes it, for one target. ``host`` measures
    latency on the target (``latency_ms``); any other name is an emulated board whose
    host time is ``host_latency_ms`` and whose instructions are counted."""
    on_target = target == "host"
    artifacts = [{
        "name": "baseline.keras", "file": None, "format": "keras", "precision": "float32",
        "encoding": "dense", "sha256": None, "parent": None, "settings": {},
        "measurements": {"accuracy": figure(0.9750, "fraction", "tf_keras"),
                         "f1_macro": figure(0.9747, "fraction", "tf_keras")}}]
    for i, (name, (fmt, precision, size, median, insns)) in enumerate(ARTIFACTS.items()):
        m = {
            "accuracy": figure(0.9722, "fraction", BY),
            "precision_macro": figure(0.9730, "fraction", BY),
            "recall_macro": figure(0.9718, "fraction", BY),
            "f1_macro": figure(0.9719, "fraction", BY),
            "agreement": figure(0.9944, "fraction", BY),
            "size_bytes": figure(size, "bytes", "os.stat"),
            "gzip_bytes": figure(int(size * 0.81), "bytes", "gzip -9"),
            "latency_ms" if on_target else "host_latency_ms":
                latency_figure(median * latency_scale, seed * 100 + i, load=load),
            "breakdown": {"tensors": {"sequential/conv2d/Conv2D": 72,
                                      "sequential/dense/MatMul": 8192, "arith.constant": 40},
                          "ops": {"CONV_2D": 2, "FULLY_CONNECTED": 2, "RESHAPE": 1},
                          "method": "measured", "by": "read from the file"},
        }
        if insns is not None and not on_target:
            m["instructions_per_invoke"] = figure(insns, "instructions",
                                                  "qemu-aarch64 cortex-a72 plugin")
        artifacts.append({"name": name, "file": f"model_{name.replace('.', '_')}", "format": fmt,
                          "precision": precision, "encoding": "dense", "sha256": "ab" * 32,
                          "parent": "compressed.keras", "settings": {}, "measurements": m})
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "edgeprune", "version": "0.1.0"},
        "target": {"name": target, "engine": "litert", "threads": 1, "delegate": "xnnpack",
                   "device_kind": "local" if on_target else "qemu",
                   "device": "local x86_64", "profile_sha256": "cd" * 32,
                   "tolerances": dict(PROFILE_TOLERANCES if tolerances is None else tolerances)},
        "model": {"source": "models/digits", "sha256": "ef" * 32, "input_shape": [8, 8, 1],
                  "num_classes": 10, "parameters": 12_345},
        "data": {"source": "models/digits", "test_samples": 360, "sha256": "01" * 32},
        "seed": 0,
        "recipe": {"quantize": ["float32", "int8"], "formats": ["tflite", "onnx"]},
        "compression": {"sparsity": {"conv2d/kernel": 0.75}, "history": {}, "notes": []},
        "artifacts": artifacts,
        "deploy": "int8.tflite",
        "budgets": [{"name": "max_size_bytes", "figure": "size_bytes", "artifact": "int8.tflite",
                     "limit": 2_000_000, "value": 14_876, "verdict": "pass", "note": ""}],
        "advice": [],
        "verdict": "pass",
    }


def with_files(report: dict, folder: Path, files: dict[str, Path]) -> dict:
    """``report`` with artifacts ``files`` (name -> a real file) copied into ``folder``
    (the report's directory), their sha256 recorded as export records them; the other
    artifacts are dropped."""
    out = copy.deepcopy(report)
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for art in out["artifacts"]:
        if art["format"] == "keras":
            kept.append(art)
        elif art["name"] in files:
            dest = folder / f"model_{art['name'].replace('.', '_')}.{art['format']}"
            shutil.copyfile(files[art["name"]], dest)
            art["file"] = dest.name
            art["sha256"] = hashlib.sha256(dest.read_bytes()).hexdigest()
            art["measurements"]["size_bytes"]["value"] = dest.stat().st_size
            kept.append(art)
    out["artifacts"] = kept
    return out


def measurement(report: dict, artifact: str, name: str) -> dict:
    for art in report["artifacts"]:
        if art["name"] == artifact:
            return art["measurements"][name]
    raise KeyError(artifact)


def row(result, figure_name: str, artifact: str = "int8.tflite", target: str = "host"):
    found = [r for r in result.rows
             if (r.target, r.artifact, r.figure) == (target, artifact, figure_name)]
    assert len(found) == 1, f"{target}/{artifact}/{figure_name}: {found}"
    return found[0]
