"""Is each exported file the model it claims to be? Its outputs, compared with its parent's.

Every artifact is run on the same inputs as the model it was made from (the test split,
every sample) and must agree within the tolerance stated for its precision; a file that
does not is moved to ``rejected/``, never deployed, and the report says why. The
tolerances, and what each one stands on:

============================  ===========================================================
comparison                    tolerance
============================  ===========================================================
sparse vs dense encoding      int8: bit-exact (the same integers, integer sums); float:
(one file re-encoded)         normalised RMS error <= 1e-5 (a sparse kernel may add in
                              another order)
artifact vs its parent        float32 nrmse <= 1e-4, top-1 >= 0.99; float16 nrmse <= 0.02,
(Keras model, float32.onnx)   top-1 >= 0.97; dynamic nrmse <= 0.1, top-1 >= 0.9; int8
                              nrmse <= 0.3, top-1 >= 0.85 (quantization error; beyond it
                              the file is not a quantization of its parent)
the target's device vs this   int8 with XNNPACK or onnxruntime: within one output
machine (same file)           quantization step (measured: x86 vs an emulated Cortex-A72,
                              XNNPACK, one step in 0.1% of ResNet-8's and DS-CNN's
                              outputs); int8 with LiteRT's built-in or TFLite Micro's
                              kernels: nrmse <= 0.1, top-1 >= 0.9 (each layer rounds its
                              own way and the steps add up: up to 34 steps, nrmse 0.042
                              on MobileNetV2); float:
                              nrmse <= 1e-4 (float16 and dynamic: <= 0.02)
============================  ===========================================================

nrmse is the RMS of the difference over the standard deviation of the reference's
outputs; top-1 is the fraction of samples whose highest output is the same (classifiers).

Sibling artifacts (the same precision in two formats: ``int8.tflite`` and ``int8.onnx``)
must score the same task metric within the target's ``max_accuracy_drop``;
:func:`sibling_gaps` flags the one that scores lower, with the likely cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .report.schema import BudgetVerdict, figure


@dataclass(frozen=True)
class Tolerance:
    """How close two runs' outputs must be; ``label`` states it in words."""

    label: str
    exact: bool = False
    nrmse: float | None = None      # RMS(difference) / std(reference)
    steps: float | None = None      # max |difference| in output quantization steps
    top1: float | None = None       # least top-1 agreement (classifiers)


BIT_EXACT = Tolerance("bit-exact", exact=True)
ENCODING = {"int8": BIT_EXACT}
ENCODING_FLOAT = Tolerance("nrmse <= 1e-05 (a sparse kernel may add in another order)", nrmse=1e-5)
PARENT = {
    "float32": Tolerance("nrmse <= 0.0001, top-1 >= 0.99", nrmse=1e-4, top1=0.99),
    "float16": Tolerance("nrmse <= 0.02, top-1 >= 0.97", nrmse=0.02, top1=0.97),
    "dynamic": Tolerance("nrmse <= 0.1, top-1 >= 0.9", nrmse=0.1, top1=0.9),
    "int8": Tolerance("nrmse <= 0.3, top-1 >= 0.85", nrmse=0.3, top1=0.85),
}
DEVICE = {
    "int8": Tolerance("within one output quantization step (XNNPACK's and onnxruntime's int8 "
                      "kernels for another instruction set may round a tie differently)", steps=1.0),
    "float32": Tolerance("nrmse <= 0.0001 (float rounding)", nrmse=1e-4),
    "float16": Tolerance("nrmse <= 0.02 (float16 arithmetic where the CPU has it)", nrmse=0.02),
    "dynamic": Tolerance("nrmse <= 0.02 (activations quantized per run by each CPU's kernels)",
                         nrmse=0.02),
}
# LiteRT's built-in int8 kernels (delegate "none") and TFLite Micro's reference kernels round
# each layer's requantization their own way on each instruction set, and the steps add up
# through the layers. Measured, x86 vs an emulated Cortex-A72 on 100 test samples (max
# steps, nrmse, top-1): ResNet-8-like 10, 0.018, 0.97; DS-CNN-like 6, 0.0095, 0.99;
# MobileNetV1-like 12, 0.033, 0.99; MobileNetV2 34, 0.042, 0.99. XNNPACK on the same: at
# most one step (nrmse <= 0.0005), top-1 1.0.
DEVICE_BUILTIN_INT8 = Tolerance("nrmse <= 0.1, top-1 >= 0.9 (built-in or reference int8 kernels "
                                "round each layer differently per instruction set)", nrmse=0.1, top1=0.9)


def encoding_tolerance(precision: str) -> Tolerance:
    return ENCODING.get(precision, ENCODING_FLOAT)


def compare(candidate: np.ndarray, reference: np.ndarray, tol: Tolerance, *,
            step: float | None = None, classifier: bool = True) -> dict:
    """Compare two runs' outputs on the same inputs; the result says whether ``tol`` holds.
    Top-1 agreement is measured (and held to ``tol.top1``) for a classifier's (N, classes)
    outputs only."""
    out = {"tolerance": tol.label, "samples": int(len(reference))}
    if candidate.shape != reference.shape:
        return {**out, "passed": False,
                "reason": f"output shape {candidate.shape[1:]} differs from {reference.shape[1:]}"}
    bad = {name: int(np.size(run) - np.count_nonzero(np.isfinite(run)))
           for name, run in (("candidate", candidate), ("reference", reference))}
    if any(bad.values()):
        # NaN compares false with every tolerance: without this, it would pass them all
        which = " and ".join(f"{n:,} of the {name}'s" for name, n in bad.items() if n)
        return {**out, "passed": False, "max_abs_diff": None, "nrmse": None, "nonfinite_outputs": bad,
                "reason": f"{which} output values are NaN or infinite"}
    diff = candidate.astype(np.float64) - reference.astype(np.float64)
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    spread = float(np.std(reference)) or 1.0
    nrmse = float(np.sqrt(np.mean(diff ** 2)) / spread) if diff.size else 0.0
    out.update(max_abs_diff=max_abs, nrmse=nrmse)
    problems = []
    if tol.exact and max_abs != 0.0:
        problems.append(f"max |diff| {max_abs:.3g}, expected bit-exact")
    if tol.nrmse is not None and nrmse > tol.nrmse:
        problems.append(f"nrmse {nrmse:.3g} > {tol.nrmse:g}")
    if tol.steps is not None:
        if step:
            out["steps"] = max_abs / step
            if max_abs > tol.steps * step * (1 + 1e-4):
                problems.append(f"max |diff| {max_abs:.3g} is {max_abs / step:.1f} output steps "
                                f"(step {step:.3g}) > {tol.steps:g}")
        elif max_abs > 1e-4 * spread:  # no quantized output to measure steps by: float rounding
            problems.append(f"max |diff| {max_abs:.3g} and no output quantization step known")
    if classifier and reference.ndim == 2 and reference.shape[1] > 1:
        top1 = float(np.mean(np.argmax(candidate, 1) == np.argmax(reference, 1)))
        out["top1_agreement"] = top1
        if tol.top1 is not None and top1 < tol.top1:
            problems.append(f"top-1 agreement {top1:.4f} < {tol.top1:g}")
    out["passed"] = not problems
    if problems:
        out["reason"] = "; ".join(problems)
    return out


def output_step(path: str | Path) -> float | None:
    """The quantization step of the model's output (the scale of the int8 output, or of
    the tensor its final dequantize reads), or None when the output is not quantized."""
    path = Path(path)
    if path.suffix == ".onnx":
        return _onnx_output_step(path)
    from .measure.tflite_graph import read_graph

    graph = read_graph(path)
    out = graph.outputs[0]
    if out.dtype in ("int8", "uint8") and out.scale:
        return out.scale
    producer = next((op for op in graph.ops if op.subgraph == 0 and op.outputs
                     and op.outputs[0].index == out.index), None)
    if producer is not None and producer.name == "DEQUANTIZE" and producer.inputs[0].scale:
        return producer.inputs[0].scale
    return None


def _onnx_output_step(path: Path) -> float | None:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    node = producer.get(graph.output[0].name)
    if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in inits:
        return None
    scale = numpy_helper.to_array(inits[node.input[1]])
    return float(scale.reshape(-1)[0]) if scale.size == 1 else None


# --------------------------------------------------------------------------- an export's files

def parent_check(precision: str, outputs: np.ndarray, parent_outputs: np.ndarray,
                 parent: str, classifier: bool = True) -> dict:
    """One artifact's outputs against its parent's (the model it was converted from)."""
    return {"against": parent, **compare(outputs, parent_outputs, PARENT[precision],
                                         classifier=classifier)}


def integrity_figure(checks: list[dict], by: str) -> dict:
    """The artifact's verdict: value = number of failed checks (0: it is what it claims)."""
    failed = [c for c in checks if not c["passed"]]
    return figure(len(failed), "failed checks", by, passed=not failed, checks=checks)


def failure_reason(fig: dict) -> str:
    return "; ".join(f"against {c['against']}: {c.get('reason', 'failed')}"
                     for c in fig["checks"] if not c["passed"])


def integrity_verdicts(deploy_name: str, measurements: dict) -> list[BudgetVerdict]:
    """A budget line for the deployed artifact's cross-checks, and one for its sibling."""
    out = []
    fig = measurements.get("integrity")
    if fig is not None:
        out.append(BudgetVerdict("integrity", "integrity", deploy_name, 0, fig["value"],
                                 "pass" if fig["passed"] else "fail",
                                 "outputs agree with its parent's and across runtimes"
                                 if fig["passed"] else f"not deployed: {failure_reason(fig)}"))
    gap = measurements.get("sibling_gap")
    if gap is not None and gap["flagged"]:
        out.append(BudgetVerdict("sibling_gap", gap.get("metric", "accuracy"), deploy_name, gap["tolerance"],
                                 round(gap["value"], 6), "fail",
                                 f"scores lower than {gap['against']}: {gap['likely_cause']}"))
    return out


def device_check(dev, host, art, engine: str, classifier: bool = True) -> dict:
    """The target device's outputs (``dev``, a RunResult) against this machine's for the
    same file: the ``host_agreement`` figure (value: top-1 agreement)."""
    builtin = engine == "tflm" or (engine == "litert" and host.extra.get("delegate") == "none")
    if art.precision == "int8" and builtin:
        tol = DEVICE_BUILTIN_INT8
    else:
        tol = DEVICE.get(art.precision, DEVICE["float32"])
    step = output_step(art.path) if art.precision == "int8" else None
    result = compare(dev.outputs, host.outputs, tol, step=step, classifier=classifier)
    top1 = result.get("top1_agreement", 1.0 if result["passed"] else 0.0)
    extra = {k: result[k] for k in ("steps", "reason") if k in result}
    if step and "steps" not in extra:
        extra["steps"] = result.get("max_abs_diff", 0.0) / step
    return figure(top1, "fraction", f"{dev.where} vs {host.where}",
                  max_abs_diff=result.get("max_abs_diff"), bit_exact=result.get("max_abs_diff") == 0.0,
                  expected=tol.label, passed=result["passed"], samples=result["samples"],
                  nrmse=result.get("nrmse"), **extra)


def reject(art, staging: Path, reason: str):
    """Move a file that failed its cross-checks to ``rejected/``; returns the moved Artifact."""
    import dataclasses

    folder = staging / "rejected"
    folder.mkdir(exist_ok=True)
    target = folder / art.path.name
    art.path.rename(target)
    return dataclasses.replace(art, path=target, settings={**art.settings, "rejected": reason})


def cross_check(artifacts: list, measurements: dict[str, dict], outputs: dict[str, np.ndarray],
                parents: dict[str, np.ndarray], staging: Path, log, classifier: bool = True) -> list:
    """Attach ``measurements[name]["integrity"]`` to every artifact (its sparse/dense check,
    its outputs against its parent's, the device's against this machine's) and move each
    file that fails to ``rejected/``. ``outputs``: each artifact's outputs on this machine;
    ``parents``: outputs of the Keras models by name (``compressed.keras``, and ``qat`` for
    the QAT model an int8 file was converted from). Returns the artifacts, moved ones
    with their new path."""
    kept = []
    for art in artifacts:
        checks = []
        if art.settings.get("encoding_check") and art.encoding == "sparse":
            # proves the deployed sparse file is the dense one; when the two disagreed, the
            # dense file is deployed and the check stays in settings (encoding_reason)
            checks.append(art.settings["encoding_check"])
        label, reference = art.parent, outputs.get(art.parent, parents.get(art.parent))
        if art.settings.get("quantization_aware") and "qat" in parents:
            label, reference = "the QAT model (compressed.keras, fake-quantized)", parents["qat"]
        if reference is not None and art.name in outputs:
            checks.append(parent_check(art.precision, outputs[art.name], reference, label, classifier))
        device = measurements[art.name].get("host_agreement")
        if device is not None and "passed" in device:
            checks.append({"against": "this machine (same file)", **{
                k: device[k] for k in ("passed", "expected", "max_abs_diff", "samples", "reason", "steps")
                if k in device}, "top1_agreement": device["value"]})
        n = next((c["samples"] for c in checks if "samples" in c), 0)
        fig = integrity_figure(checks, f"outputs of each run compared on the same {n} test samples")
        measurements[art.name]["integrity"] = fig
        if not fig["passed"]:
            reason = failure_reason(fig)
            log(f"rejected {art.path.name}: {reason}")
            art = reject(art, staging, reason)
        kept.append(art)
    return kept
