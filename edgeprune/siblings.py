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


def sibling_tolerance(profile, task) -> tuple[float, str, str, bool] | None:
    """The gap allowed between siblings, where it comes from, the metric it is on and
    whether higher is better. A classifier's accuracy: the target's ``max_accuracy_drop``
    (what the deployed file may lose at all), else its ``tolerances.accuracy_points``. Any
    other task's primary metric: ``max_metric_drop`` when the budget is on that metric;
    else None (no stated tolerance: siblings are not compared)."""
    budgets = profile.budgets
    metric = task.primary
    if metric == "accuracy":
        if budgets.max_accuracy_drop is not None:
            return budgets.max_accuracy_drop, "budgets.max_accuracy_drop", metric, True
        return profile.tolerances.accuracy_points / 100.0, "tolerances.accuracy_points", metric, True
    if budgets.max_metric_drop is not None and (budgets.metric or metric) == metric:
        return budgets.max_metric_drop, "budgets.max_metric_drop", metric, task.direction(metric) == "higher"
    return None


def sibling_gaps(records: list, paths: dict[str, Path], x: np.ndarray, y: np.ndarray,
                 tolerance: float, tolerance_from: str = "", metric: str = "accuracy",
                 higher: bool = True) -> dict[str, dict]:
    """``{artifact name: figure}`` for the worse-scoring artifact of each sibling pair on
    ``metric``; ``tolerance`` is in the metric's units (0.01: one point of accuracy)."""
    by_name = {r.name: r for r in records if r.format in ("tflite", "onnx")}
    out = {}
    tol = tolerance
    for name, rec in by_name.items():
        precision, fmt = name.split(".")
        if fmt != "tflite" or f"{precision}.onnx" not in by_name:
            continue
        other = by_name[f"{precision}.onnx"]
        a, b = _score(rec, metric), _score(other, metric)
        if a is None or b is None:
            continue
        worse, better = (rec, other) if (a < b) == higher else (other, rec)
        gap = abs(a - b)
        flagged = gap > tol + 1e-12
        cause = likely_cause(worse, better, paths, x, y, tol) if flagged and metric == "accuracy" else \
            (_quantizers(worse, better, paths) if flagged else "")
        out[worse.name] = figure(gap, "fraction" if metric == "accuracy" else metric,
                                 f"{metric}: {better.name} against {worse.name}, both on the "
                                 f"{len(x)} test samples", against=better.name, metric=metric,
                                 tolerance=tol, tolerance_from=tolerance_from, flagged=flagged,
                                 likely_cause=cause)
    return out


def _score(record, metric: str) -> float | None:
    fig = record.measurements.get(metric)
    return None if fig is None else float(fig["value"])


def _accuracy(record) -> float | None:
    return _score(record, "accuracy")


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
    return _quantizers(worse, better, paths)


def _quantizers(worse, better, paths: dict[str, Path]) -> str:
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
