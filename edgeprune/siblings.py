"""Sibling artifacts: one precision in two formats (``int8.tflite`` and ``int8.onnx``)
are the same compressed model quantized by two tools, so they should score the same.

:func:`sibling_gaps` flags the one that scores lower when the gap passes the target's
``max_accuracy_drop`` (what the deployed file may lose at all; else its
``tolerances.accuracy_points``), with the likely cause, found by measurement where it can:

- an int8 ONNX file is run again with onnxruntime's QDQ reference arithmetic
  (dequantize, float op, quantize: the math the file states). If that scores like the
  sibling, the loss is in onnxruntime's fused int8 kernels on this machine, not in the
  file (x86 CPUs without AVX-VNNI add pairs of u8 x s8 products in 16 bits, which
  saturate with full 8-bit weights);
- otherwise the two quantizers made different choices: per-channel or per-tensor
  weights (read from each file), the weight range and the calibration (from settings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .report.schema import figure


def sibling_tolerance(profile) -> tuple[float, str]:
    """The gap allowed between siblings: the target's ``max_accuracy_drop`` (what the
    deployed file may lose at all), else its ``tolerances.accuracy_points``."""
    if profile.budgets.max_accuracy_drop is not None:
        return profile.budgets.max_accuracy_drop, "budgets.max_accuracy_drop"
    return profile.tolerances.accuracy_points / 100.0, "tolerances.accuracy_points"


def sibling_gaps(records: list, paths: dict[str, Path], x: np.ndarray, y: np.ndarray,
                 tolerance: float, tolerance_from: str = "") -> dict[str, dict]:
    """``{artifact name: figure}`` for the lower-scoring artifact of each sibling pair;
    ``tolerance`` is a fraction (0.01: one point of accuracy)."""
    by_name = {r.name: r for r in records if r.format in ("tflite", "onnx")}
    out = {}
    tol = tolerance
    for name, rec in by_name.items():
        precision, fmt = name.split(".")
        if fmt != "tflite" or f"{precision}.onnx" not in by_name:
            continue
        other = by_name[f"{precision}.onnx"]
        a, b = _accuracy(rec), _accuracy(other)
        if a is None or b is None:
            continue
        worse, better = (rec, other) if a < b else (other, rec)
        gap = abs(a - b)
        flagged = gap > tol + 1e-12
        cause = likely_cause(worse, better, paths, x, y, tol) if flagged else ""
        out[worse.name] = figure(gap, "fraction", f"accuracy of {better.name} minus {worse.name}, "
                                 f"both on the {len(y)} test samples", against=better.name,
                                 tolerance=tol, tolerance_from=tolerance_from, flagged=flagged,
                                 likely_cause=cause)
    return out


def _accuracy(record) -> float | None:
    fig = record.measurements.get("accuracy")
    return None if fig is None else float(fig["value"])


def likely_cause(worse, better, paths: dict[str, Path], x: np.ndarray, y: np.ndarray,
                 tol: float) -> str:
    better_acc = _accuracy(better)
    path = paths.get(worse.name)
    if worse.format == "onnx" and worse.precision == "int8" and path is not None and path.is_file():
        reference = qdq_reference_accuracy(path, x, y)
        if reference is not None and reference >= better_acc - tol:
            return (f"onnxruntime's fused int8 kernels on this machine: the same file computed "
                    f"with the QDQ reference arithmetic (dequantize, float op, quantize) scores "
                    f"{reference:.4f}; x86 CPUs without AVX-VNNI add pairs of u8 x s8 products in "
                    f"16 bits and saturate with 8-bit weights: keep recipe.onnx_quant.reduce_range "
                    f"= true (7-bit weights, weights now: {worse.settings.get('weights', '?')})")
    if worse.precision == "int8":
        cause = "the two quantizers differ: " + "; ".join(
            f"{rec.name}: {_scheme(rec, paths.get(rec.name))}" for rec in (worse, better))
        if worse.format == "onnx" and "7-bit" in str(worse.settings.get("weights", "")):
            cause += (" (7-bit weights have half the resolution of 8-bit ones; on an Arm CPU or "
                      "one with AVX-VNNI, recipe.onnx_quant.reduce_range = false gives 8 bits)")
        return cause
    return (f"the two converters differ at {worse.precision}: compare each file's outputs with "
            f"compressed.keras (measurements.integrity)")


def _scheme(record, path: Path | None) -> str:
    s = record.settings
    granularity = weight_granularity(path) if path is not None and path.is_file() else None
    shown = f"per-channel weights in {granularity}, " if granularity else ""
    if record.format == "onnx":
        return (f"{shown}weights {s.get('weights', '?')}, calibration {s.get('calibration', '?')} "
                f"on {s.get('calibration_samples', '?')} samples")
    return (f"{shown}TFLite converter calibration (min/max) on "
            f"{s.get('representative_samples', '?')} samples"
            + (", quantization-aware training" if s.get("quantization_aware") else ""))


def weight_granularity(path: Path) -> str | None:
    """``"4 of 5 weight tensors"``: how many int8 weight tensors have one scale per channel."""
    per_channel = total = 0
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        inits = {i.name: i for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] in inits \
                    and len(inits[node.input[0]].dims) >= 2 and node.input[1] in inits:
                total += 1
                per_channel += numpy_helper.to_array(inits[node.input[1]]).size > 1
    else:
        from .measure.tflite_graph import read_graph

        for op in read_graph(path).ops:
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1 \
                    and op.inputs[1].is_constant and op.inputs[1].dtype == "int8":
                total += 1
                per_channel += len(op.inputs[1].scales) > 1
    return f"{per_channel} of {total} weight tensors" if total else None


def qdq_reference_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float | None:
    """Accuracy of an int8 QDQ .onnx run with onnxruntime's QDQ fusions off (the
    reference arithmetic), or None when onnxruntime cannot run it that way."""
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        scores = np.concatenate([sess.run(None, {name: x[i:i + 1].astype(np.float32)})[0]
                                 for i in range(len(x))])
    except Exception:  # the cause stays unmeasured; the caller says what else differs
        return None
    return float(np.mean(np.argmax(scores.reshape(len(x), -1), 1) == y))
