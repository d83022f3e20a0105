"""Check a .tflite file against an accelerator's published rules.

For targets whose compiler is not available here (``device.kind = "rules"``,
e.g. the Coral Edge TPU, whose ``edgetpu_compiler`` is an x86 Debian package
that is not installed), edgeprune cannot compile the model; it checks the
rules the vendor documents instead. Passing them means the compiler should map
the model to the accelerator; it does not prove it (the compiler has further,
per-op limits). Reports must say so: use :func:`rules_only_note`.

Example::

    violations = check_compatibility("dist/int8.tflite", profile.compatibility)
    # ['input 0 (serving_default_input:0) is float32; int8 I/O is required ...']
"""

from __future__ import annotations

from pathlib import Path

from .measure.tflite_graph import OpInfo, TensorInfo, describe_op, read_graph
from .targets import Compatibility

_INT8 = {"int8"}
_FLOAT = {"float32", "float16", "float64", "bfloat16"}
_LISTED = 8          # ops named per violation before "... and N more"


def check_compatibility(tflite_path: str | Path, rules: Compatibility) -> list[str]:
    """The ways the model breaks ``rules``, one sentence each; empty when it meets them.

    Checks, as the rules ask: every op computes in integers (``requires_full_int8``),
    the model's inputs and outputs are int8 (``requires_int8_io``), no tensor has a
    dynamic dimension other than the batch (``static_shapes``), and every op is in
    ``supported_ops`` (when that list is not empty).
    """
    graph = read_graph(tflite_path)
    violations: list[str] = []
    if rules.requires_full_int8:
        float_ops = [op for op in graph.ops if _computes_in_float(op)]
        if float_ops:
            violations.append(
                f"not full int8: {_count(float_ops)} compute in float "
                f"({_list(float_ops)}); quantize with a representative dataset and "
                "supported_ops = TFLITE_BUILTINS_INT8 (recipe quantize = [\"int8\"])")
    if rules.requires_int8_io:
        for kind, tensors in (("input", graph.inputs), ("output", graph.outputs)):
            for i, t in enumerate(tensors):
                if t.dtype not in _INT8:
                    violations.append(
                        f"{kind} {i} ({t.name}) is {t.dtype}; int8 I/O is required "
                        "(set recipe int8_io = true)")
    if rules.static_shapes:
        dynamic = [t for t in graph.tensors if t.is_dynamic]
        if dynamic:
            names = ", ".join(f"{t.name} {list(t.shape_signature)}" for t in dynamic[:_LISTED])
            violations.append(
                f"{len(dynamic)} tensor(s) have a dynamic dimension besides the batch: {names}"
                + _more(dynamic) + "; give the Keras Input a fixed shape")
    if rules.supported_ops:
        allowed = set(rules.supported_ops)
        unsupported = [op for op in graph.ops if op.name not in allowed]
        if unsupported:
            names = sorted({op.name for op in unsupported})
            violations.append(
                f"unsupported op(s) {', '.join(names)}: {_list(unsupported)}; the accelerator "
                "would run these (and usually everything after them) on the CPU")
    return violations


def rules_only_note(rules: Compatibility, accelerator: str = "the accelerator") -> str:
    """The sentence a report carries when a target was checked by rules only."""
    base = (f"checked against {accelerator}'s documented rules only: its compiler is not "
            "available here, so the model was neither compiled nor run on it")
    return f"{base}. {rules.note}" if rules.note else base


def _computes_in_float(op: OpInfo) -> bool:
    # QUANTIZE / DEQUANTIZE at the edges only convert; int8 I/O is checked on its own.
    if op.name in ("QUANTIZE", "DEQUANTIZE"):
        return False
    return any(t.dtype in _FLOAT for t in (*op.inputs, *op.outputs))


def _count(ops: list[OpInfo]) -> str:
    return f"{len(ops)} op" + ("s" if len(ops) != 1 else "")


def _list(ops: list[OpInfo]) -> str:
    return ", ".join(describe_op(op) for op in ops[:_LISTED]) + _more(ops)


def _more(items: list[OpInfo] | list[TensorInfo]) -> str:
    return f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
