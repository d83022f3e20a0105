"""Dense or sparse: how a converted .tflite stores its weights, chosen by measurement.

The sparse candidate is the dense file re-encoded (:func:`edgeprune.export.tflite.sparsify`),
so both should hold the same quantized values. It is kept only when it is smaller, loads
and runs under the target's runtime and delegate on this machine, gives the dense file's
outputs on the same inputs (int8: bit-exact; see edgeprune/integrity.py), and reads back
the same zero weights in every layer (TensorFlow's re-encoding drops most values of an
int8 fully-connected layer with fewer than 16 inputs: measured with 4, 8 and 12).
Anything else keeps the dense file and records why; ``tflite_sparse_encoding =
"always"`` turns the same findings into an error instead.

What each encoding did is kept too (``runs``): whether it loaded, which ops the
delegate took and which read sparse weights. The advice is made from that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, UnsupportedError
from ..integrity import compare, encoding_tolerance
from ..runtimes.probe import Probe, probe_tflite

SAMPLES = 256   # test samples run through both encodings (all of them when fewer)
TIMED = 50      # invokes timed for each encoding (the advice quotes them)


@dataclass
class EncodingChoice:
    encoding: str                       # "dense" | "sparse"
    data: bytes
    reason: str
    bytes_by_encoding: dict[str, int]
    check: dict | None = None           # sparse vs dense outputs (edgeprune.integrity.compare)
    runs: dict[str, dict] = field(default_factory=dict)   # encoding -> Probe.summary()


def choose_encoding(dense: bytes, precision: str, profile, sample: np.ndarray,
                    staging: Path) -> EncodingChoice:
    mode = profile.recipe.tflite_sparse_encoding
    by_encoding = {"dense": len(dense)}
    if profile.runtime.engine == "tflm":
        if mode == "always":
            raise ConfigError("TFLite Micro cannot run the TFLite sparse encoding",
                              where=f"target {profile.name}: recipe.tflite_sparse_encoding",
                              expected='"auto" or "never" for a tflm target')
        return EncodingChoice("dense", dense, "TFLite Micro has no sparse-tensor support", by_encoding)
    wanted = mode != "never" and profile.recipe.prune is not None
    dense_run = _probe(dense, staging, f"{precision}_dense", profile, sample if wanted else None)
    _raise_if_broken(dense_run, precision, profile)
    runs = {"dense": dense_run.summary()}
    if not wanted:
        return EncodingChoice("dense", dense, "not requested" if mode == "never" else
                              "no pruning in the recipe", by_encoding, runs=runs)
    from .tflite import sparsify

    sparse = sparsify(dense)
    by_encoding["sparse"] = len(sparse)
    sizes = f"dense {len(dense)} bytes, sparse encoding {len(sparse)} bytes"
    if len(sparse) >= len(dense) and mode == "auto":
        return EncodingChoice("dense", dense, f"sparse encoding not smaller ({sizes})", by_encoding,
                              runs=runs)
    sparse_run = _probe(sparse, staging, f"{precision}_sparse", profile, sample)
    runs["sparse"] = sparse_run.summary()
    delegate = profile.runtime.delegate
    if not sparse_run.ran:
        where = f" at {sparse_run.failing_op}" if sparse_run.failing_op else ""
        problem = (f"the {precision} model in the sparse encoding fails with delegate {delegate!r}"
                   f"{where}: {_first_line(sparse_run.error)}")
        if mode == "always":
            raise ConfigError(problem, where=f"target {profile.name}: recipe.tflite_sparse_encoding",
                              fix='use "auto" (keeps the dense file when the sparse one fails)') from None
        return EncodingChoice("dense", dense, f"{problem} ({sizes})", by_encoding, runs=runs)
    check = {"against": "dense encoding", **compare(sparse_run.outputs, dense_run.outputs,
                                                     encoding_tolerance(precision))}
    lost = weights_lost(dense, sparse, staging)
    if lost:
        check["passed"] = False
        check["weights_lost"] = lost
        check["reason"] = "; ".join(filter(None, [check.get("reason"), "zero weights read back: " + ", ".join(
            f"{layer} {s:.1%} in the sparse encoding vs {d:.1%} dense" for layer, (d, s) in lost.items())]))
    if not check["passed"]:
        problem = (f"the sparse encoding is not the dense file's model (on {check['samples']} test "
                   f"samples): {check['reason']}")
        if mode == "always":
            raise ConfigError(problem, where=f"target {profile.name}: recipe.tflite_sparse_encoding",
                              fix='use "auto" (keeps the dense file when the two disagree)')
        return EncodingChoice("dense", dense, f"{problem} ({sizes})", by_encoding, check, runs)
    same = "bit-exact" if check["max_abs_diff"] == 0 else f"nrmse {check['nrmse']:.2g}"
    return EncodingChoice("sparse", sparse, f"sparse encoding is smaller, runs with delegate "
                          f"{delegate!r} and gives the dense file's outputs ({same} on "
                          f"{check['samples']} test samples; {sizes})", by_encoding, check, runs)


def weights_lost(dense: bytes, sparse: bytes, staging: Path) -> dict[str, tuple[float, float]]:
    """Layers whose fraction of zero weights, read back from each file, differs between the
    two encodings: ``{layer: (dense, sparse)}``. A re-encoding must not change a weight;
    TensorFlow's pass keeps 1 to 3% of an int8 layer with fewer than 16 inputs."""
    from ..measure.sparsity import tflite_sparsity

    paths = [staging / ".weights_dense.tflite", staging / ".weights_sparse.tflite"]
    try:
        for path, data in zip(paths, (dense, sparse)):
            path.write_bytes(data)
        before, after = (tflite_sparsity(path) for path in paths)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    if len(before) != len(after):
        return {"(weights)": (float(len(before)), float(len(after)))}
    return {name: (d, s) for d, (name, s) in zip(before.values(), after.items()) if abs(d - s) > 1e-9}


def _probe(data: bytes, staging: Path, label: str, profile, sample) -> Probe:
    path = staging / f".probe_{label}.tflite"
    path.write_bytes(data)
    try:
        return probe_tflite(path, threads=profile.runtime.threads,
                            delegate=profile.runtime.delegate, inputs=sample,
                            timed=TIMED if sample is not None else 0)
    finally:
        path.unlink(missing_ok=True)


def _raise_if_broken(run: Probe, precision: str, profile) -> None:
    """A dense file the runtime cannot run: the model uses something it does not support."""
    if run.error is None:
        return
    if "runtime-missing" in run.error or "no TFLite runtime importable" in run.error:
        from ..errors import DeviceError

        raise DeviceError(_first_line(run.error), where="this machine",
                          fix="install the runtime: pip install ai-edge-litert")
    op = run.failing_op or "an op the message does not name"
    raise UnsupportedError(f"the {precision} .tflite fails in LiteRT with delegate "
                           f"{profile.runtime.delegate!r} at {op}: {_first_line(run.error)}",
                           where=f"export.tflite ({precision})",
                           fix="drop this precision from recipe.quantize, or change the layer named")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else "unknown error"
