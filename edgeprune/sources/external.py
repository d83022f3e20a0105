"""A ``.tflite`` or ``.onnx`` file made elsewhere (litert-torch, an ONNX exporter, another
pipeline), described from the file alone for ``edgeprune validate``: its input, its
outputs (names, shapes, whether a softmax ends them) and its precision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..types import ModelSignature, OutputSignature

#: Ops that only change the representation of a tensor: a softmax before them still ends the output.
_PASS_THROUGH_TFLITE = {"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE", "IDENTITY"}
_PASS_THROUGH_ONNX = {"DequantizeLinear", "QuantizeLinear", "Reshape", "Squeeze", "Identity", "Cast"}


@dataclass(frozen=True)
class ExternalArtifact:
    path: Path
    format: str                 # "tflite" | "onnx"
    precision: str              # "float32" | "dynamic" | "float16" | "int8"
    signature: ModelSignature

    @property
    def name(self) -> str:
        return f"{self.precision}.{self.format}"


def describe_artifact(path: str | Path) -> ExternalArtifact:
    path = Path(path)
    if not path.is_file():
        raise InputError("no artifact here", where=str(path), fix="pass a .tflite or .onnx file")
    if path.suffix == ".tflite":
        return _tflite(path)
    if path.suffix == ".onnx":
        return _onnx(path)
    raise InputError(f"unknown artifact type {path.suffix!r}", where=str(path), expected="a .tflite or .onnx file")


def _static(shape, where: str) -> tuple[int, ...]:
    dims = tuple(shape[1:])
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        raise InputError(f"input shape {list(shape)} is not static", where=where,
                         expected="a fixed input shape apart from the batch dimension")
    return dims


def _tflite(path: Path) -> ExternalArtifact:
    from ..measure.tflite_graph import read_graph
    from ..runtimes.runner import RunnerError, _litert_interpreter, _signature_output_names

    graph = read_graph(path)
    if len(graph.inputs) != 1:
        raise InputError(f"the model has {len(graph.inputs)} inputs", where=str(path), expected="one input")
    try:
        interp, _ = _litert_interpreter(str(path), 1, "none")
    except RunnerError as exc:
        raise InputError(f"cannot be loaded: {str(exc)[:300]}", where=str(path),
                         expected="a .tflite file LiteRT loads") from None
    details = interp.get_output_details()
    names = _signature_output_names(interp, details)
    producers = {t.index: op for op in graph.ops if op.subgraph == 0 for t in op.outputs}

    def softmax(index: int) -> bool:
        op = producers.get(index)
        while op is not None and op.name in _PASS_THROUGH_TFLITE and op.inputs:
            op = producers.get(op.inputs[0].index)
        return op is not None and op.name == "SOFTMAX"

    outputs = tuple(OutputSignature(n, tuple(int(v) for v in d["shape"][1:]), softmax(d["index"]))
                    for n, d in zip(names, details))
    inp = graph.inputs[0]
    dtypes = {t.dtype for t in graph.tensors}
    quantized_activations = any(op.name == "QUANTIZE" for op in graph.ops) or inp.dtype in ("int8", "uint8")
    precision = ("int8" if quantized_activations else "float16" if "float16" in dtypes
                 else "dynamic" if "int8" in dtypes else "float32")
    dtype = "float32" if inp.dtype in ("int8", "uint8") else inp.dtype
    signature = ModelSignature(_static(inp.shape, str(path)), dtype, outputs)
    return ExternalArtifact(path, "tflite", precision, signature)


def _onnx(path: Path) -> ExternalArtifact:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"cannot be read as ONNX ({str(exc).splitlines()[0][:200]})", where=str(path),
                         expected="an .onnx file") from None
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise InputError(f"the model has {len(inputs)} inputs", where=str(path), expected="one input")

    def dims(info) -> list:
        return [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]

    producers = {out: node for node in model.graph.node for out in node.output}

    def softmax(name: str) -> bool:
        node = producers.get(name)
        while node is not None and node.op_type in _PASS_THROUGH_ONNX and node.input:
            node = producers.get(node.input[0])
        return node is not None and node.op_type == "Softmax"

    outputs = tuple(OutputSignature(o.name, tuple(dims(o)[1:]), softmax(o.name)) for o in model.graph.output)
    elem = inputs[0].type.tensor_type.elem_type
    dtype = {onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64"}.get(elem, "float32")
    quantized = any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in model.graph.node)
    signature = ModelSignature(_static(dims(inputs[0]), str(path)), dtype, outputs)
    return ExternalArtifact(path, "onnx", "int8" if quantized else "float32", signature)
