"""What an exported artifact is made of: bytes per constant tensor, count per op type.

The pipeline stores the result as ``measurements.breakdown`` of a tflite or onnx
artifact; ``edgeprune check`` diffs two of them to name the tensor that grew and the
op whose count grew::

    {"tensors": {"sequential/dense/MatMul": 8192, ...}, "ops": {"FULLY_CONNECTED": 2, ...}}

Tensor bytes are elements x the dtype's size, as the runtime holds them (a sparse or
clustered encoding is counted dense). Tensors that share a name are summed, so a
name is a stable key between two exports; a tensor without a name (a file exported with
``recipe.tflite_strip``) is keyed by its index, ``#7``. Needs no TensorFlow: the LiteRT
interpreter and the ``onnx`` package only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import InputError


def breakdown_tflite(path: str | Path) -> dict:
    """Constant tensors' bytes and op counts of a ``.tflite`` file (main subgraph).

    A constant is an operator input that no operator produces and that is not a model
    input. The interpreter is built without its default delegates, so that the ops
    counted are the model's, not a ``DELEGATE`` node.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = Path(path)
    try:
        interp = Interpreter(model_path=str(path),
                             experimental_op_resolver_type=
                             OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"LiteRT cannot load it ({exc})", where=str(path),
                         expected="a .tflite flatbuffer written by `edgeprune export`") from None
    ops = interp._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    inputs = {d["index"] for d in interp.get_input_details()}
    constants = {int(i) for op in ops for i in op["inputs"] if i >= 0} - produced - inputs
    tensors: Counter[str] = Counter()
    for detail in interp.get_tensor_details():
        if detail["index"] in constants:
            count = int(np.prod(detail["shape"])) if len(detail["shape"]) else 1
            tensors[detail["name"] or f"#{detail['index']}"] += count * np.dtype(detail["dtype"]).itemsize
    return {"tensors": dict(sorted(tensors.items())),
            "ops": dict(sorted(Counter(op["op_name"] for op in ops).items()))}


def kernel_values_tflite(path: str | Path) -> dict[str, int]:
    """Distinct values in each constant weight tensor of a CONV_2D or FULLY_CONNECTED op
    (the kernels tfmot clusters; a DEPTHWISE_CONV_2D kernel it leaves alone), keyed like
    :func:`breakdown_tflite`. A weight read through a DENSIFY op (the sparse encoding) is
    not a constant of the op and is left out. A file LiteRT cannot load gives ``{}``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interp = Interpreter(model_path=str(path),
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError):
        return {}
    ops = interp._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    out: dict[str, int] = {}
    for op in ops:
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED") or len(op["inputs"]) < 2:
            continue
        index = int(op["inputs"][1])
        if index < 0 or index in produced:
            continue
        out[names.get(index) or f"#{index}"] = int(np.unique(interp.get_tensor(index)).size)
    return dict(sorted(out.items()))


def breakdown_onnx(path: str | Path) -> dict:
    """Initializers' (and Constant nodes') bytes and op_type counts of an ``.onnx`` file.

    Subgraphs (``If``, ``Loop``, ``Scan`` bodies) are included; an op type from a
    domain other than the default is counted as ``domain:op_type``.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:   # onnx raises DecodeError, OSError, ValueError ...
        raise InputError(f"onnx cannot load it ({exc})", where=str(path),
                         expected="an .onnx model written by `edgeprune export`") from None
    tensors: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    pending = [model.graph]
    while pending:
        graph = pending.pop()
        for init in graph.initializer:
            tensors[init.name] += numpy_helper.to_array(init).nbytes
        for node in graph.node:
            ops[f"{node.domain}:{node.op_type}" if node.domain not in ("", "ai.onnx")
                else node.op_type] += 1
            for attr in node.attribute:
                if node.op_type == "Constant" and attr.type == onnx.AttributeProto.TENSOR:
                    tensors[node.output[0]] += numpy_helper.to_array(attr.t).nbytes
                pending.extend([attr.g] if attr.type == onnx.AttributeProto.GRAPH else [])
                pending.extend(attr.graphs)
    return {"tensors": dict(sorted(tensors.items())), "ops": dict(sorted(ops.items()))}
