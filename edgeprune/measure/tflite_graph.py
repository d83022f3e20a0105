"""Read a .tflite flatbuffer: its ops in execution order, their tensors, and the
Keras layers they came from.

It uses the flatbuffer schema module that ships with the runtimes (LiteRT's,
TFLite Micro's or TensorFlow's ``schema_py_generated``), so nothing here parses
bytes by hand, and it does not import TensorFlow when LiteRT is installed.

Example::

    graph = read_graph("dist/int8.tflite")
    for op in graph.ops:
        print(op.index, op.name, layer_of(op), [t.dtype for t in op.outputs])
    # 0 CONV_2D conv2d ['int8']
    # 1 FULLY_CONNECTED dense ['int8']
    graph.op_names()          # ('CONV_2D', 'FULLY_CONNECTED'): distinct, first-use order
    graph.inputs[0].scale     # 0.0039..., the input's quantization

Tensor names carry the Keras layer names, e.g. ``sequential/conv2d/Relu``
or, for fused ops, ``sequential/conv2d/Relu;sequential/conv2d/BiasAdd``;
:func:`layer_of` takes the layer from them (best effort: a layer name that
TensorFlow rewrote, or a constant folded from several layers, gives another
or no name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from ..errors import InputError

_SCHEMA_MODULES = (
    "ai_edge_litert.schema_py_generated",
    "tflite_micro.tensorflow.lite.micro.python.schema_py_generated",
    "tensorflow.lite.python.schema_py_generated",
)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph.

    ``shape_signature`` has -1 where a dimension is dynamic (the batch, usually);
    ``scales``/``zero_points`` are empty for a tensor that is not quantized, and hold
    one entry per channel (along ``quantized_dimension``) for per-axis weights.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str                          # "int8", "float32", "int32", ...
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    is_constant: bool                   # has data in the file (weights, biases, shapes)

    @property
    def scale(self) -> float:
        """The per-tensor scale (0.0 when not quantized)."""
        return float(self.scales[0]) if self.scales else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points else 0

    @property
    def is_dynamic(self) -> bool:
        """True when a dimension other than the batch (dimension 0) is unknown."""
        return any(d < 0 for d in self.shape_signature[1:])


@dataclass(frozen=True)
class OpInfo:
    """One operator, in execution order within its subgraph."""

    index: int
    name: str               # builtin name ("CONV_2D"), or the custom code for custom ops
    is_custom: bool
    version: int
    subgraph: int
    inputs: tuple[TensorInfo, ...]      # optional inputs that are absent are left out
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True)
class TfliteGraph:
    path: Path
    schema_version: int
    subgraph_count: int
    ops: tuple[OpInfo, ...]             # every subgraph's ops, subgraph 0 first
    inputs: tuple[TensorInfo, ...]      # of subgraph 0, the model's signature
    outputs: tuple[TensorInfo, ...]
    tensors: tuple[TensorInfo, ...]     # of subgraph 0

    def op_names(self) -> tuple[str, ...]:
        """The distinct op names, in the order of first use."""
        return tuple(dict.fromkeys(op.name for op in self.ops))


@lru_cache(maxsize=None)
def schema() -> ModuleType:
    """The first importable flatbuffer schema module (see ``_SCHEMA_MODULES``)."""
    from importlib import import_module

    errors = []
    for name in _SCHEMA_MODULES:
        try:
            return import_module(name)
        except Exception as exc:  # ImportError, or a broken install
            errors.append(f"{name}: {exc}")
    raise InputError("no TFLite flatbuffer schema module is importable: " + "; ".join(errors),
                     fix="pip install ai-edge-litert (or tensorflow)")


@lru_cache(maxsize=None)
def _enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(schema(), enum_name)
    return {value: key for key, value in vars(enum).items() if not key.startswith("_")}


def read_graph(path: str | Path) -> TfliteGraph:
    """Parse the .tflite file at ``path``; raises :class:`InputError` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no .tflite file here", where=str(path),
                         fix="check the path; export the model first")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no 'TFL3' identifier)", where=str(path),
                         expected="a .tflite file written by the TFLite converter")
    s = schema()
    try:
        model = s.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:
        raise InputError(f"the flatbuffer cannot be parsed: {exc}", where=str(path)) from None
    buffers = model.buffers or []
    subgraphs = model.subgraphs or []
    if not subgraphs:
        raise InputError("the model has no subgraph", where=str(path))
    ops: list[OpInfo] = []
    first_tensors: tuple[TensorInfo, ...] = ()
    for sg_index, sg in enumerate(subgraphs):
        tensors = tuple(_tensor(i, t, buffers) for i, t in enumerate(sg.tensors or []))
        if sg_index == 0:
            first_tensors = tensors
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            name, custom = _op_name(code)
            ops.append(OpInfo(
                index=len(ops), name=name, is_custom=custom, version=int(code.version or 1),
                subgraph=sg_index,
                inputs=tuple(tensors[i] for i in _ints(op.inputs) if i >= 0),
                outputs=tuple(tensors[i] for i in _ints(op.outputs) if i >= 0)))
    sg0 = subgraphs[0]
    return TfliteGraph(
        path=path, schema_version=int(model.version), subgraph_count=len(subgraphs),
        ops=tuple(ops),
        inputs=tuple(first_tensors[i] for i in _ints(sg0.inputs)),
        outputs=tuple(first_tensors[i] for i in _ints(sg0.outputs)),
        tensors=first_tensors)


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _op_name(code) -> tuple[str, bool]:
    # Old files keep the builtin in deprecatedBuiltinCode (< 127); new ones in builtinCode.
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = _enum_names("BuiltinOperator").get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode
        return (custom.decode() if isinstance(custom, bytes) else str(custom or "CUSTOM")), True
    return name, False


def _tensor(index: int, t, buffers) -> TensorInfo:
    q = t.quantization
    scales = tuple(float(x) for x in (q.scale if q is not None and q.scale is not None else ()))
    zeros = tuple(int(x) for x in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
    buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
    constant = buf is not None and ((buf.data is not None and len(buf.data) > 0)
                                    or bool(getattr(buf, "size", 0)))
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
    return TensorInfo(index=index, name=name, shape=shape, shape_signature=signature,
                      dtype=_enum_names("TensorType").get(int(t.type), str(t.type)).lower(),
                      scales=scales, zero_points=zeros,
                      quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
                      is_constant=constant)


# The parts of a tensor name that are a model or op name, not a layer:
# "sequential/conv2d/Relu" -> "conv2d"; "model/dense_1/MatMul;model/dense_1/BiasAdd" -> "dense_1".
_GENERIC = re.compile(r"^(serving_default_|StatefulPartitionedCall|arith\.constant|tfl\.|"
                      r"PartitionedCall)")


def layer_of(op: OpInfo) -> str | None:
    """The Keras layer an op most likely came from, or None.

    Looks at the op's outputs first, then at its constant inputs (a final Dense
    writes ``StatefulPartitionedCall:0`` but reads ``sequential/dense_1/MatMul``).
    Of ``model/layer/TFOp`` the middle part is the layer; nested models give the
    innermost layer.
    """
    for tensor in (*op.outputs, *(t for t in op.inputs if t.is_constant)):
        layer = _layer_from_name(tensor.name)
        if layer:
            return layer
    return None


def _layer_from_name(name: str) -> str | None:
    for part in name.split(";"):
        if not part or _GENERIC.match(part):
            continue
        pieces = [p for p in part.split("/") if p]
        if len(pieces) >= 3:
            return pieces[-2]
        if len(pieces) == 2:
            return pieces[0] if pieces[1][:1].isupper() else pieces[1]
    return None


def describe_op(op: OpInfo) -> str:
    """``"TILE (op 1, layer odd_tile)"``: how errors name an op."""
    layer = layer_of(op)
    return f"{op.name} (op {op.index}" + (f", layer {layer})" if layer else ")")
