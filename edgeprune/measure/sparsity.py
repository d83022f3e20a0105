"""Sparsity read back from the weights inside an exported file, next to the Keras model's.

A pruned Keras model says 75% zeros; what the device gets is what the file holds
after conversion and quantization. These functions read the weight tensors of every
convolution and fully connected op back from the ``.tflite`` flatbuffer or the
``.onnx`` initializers and count the values that *are* zero after quantization: an
int8 value equal to its zero point (0 for TFLite's and onnxruntime's symmetric int8
weights). Quantization can only add zeros (small weights round to 0), so an
artifact's sparsity is at least the Keras model's; less means the zeros were lost.

Weights in the TFLite sparse encoding are counted from their stored values (the
blocks kept); weights behind a DENSIFY or DEQUANTIZE op (sparse float, float16) and
onnx weights behind DequantizeLinear (QDQ), Transpose or Reshape are followed back to
their constant.

    >>> tflite_sparsity("dist/int8.tflite")
    {"conv1": 0.75, "fc1": 0.7502, "logits": 0.75}
    >>> compare(keras_layer_sparsity(model), tflite=..., onnx=...)
    {"conv1": {"keras": 0.75, "tflite": 0.75, "onnx": 0.75}, ...}

Keys are Keras layer names where the tensor or op names reveal them; pass
``layer_names`` (the weighted layers in model order, e.g. ``list(keras_layer_sparsity(m))``)
to match them exactly and to name weights that TensorFlow renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from .size import gzip_size
from .tflite_graph import _layer_from_name, schema

_TFLITE_WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1,
                      "TRANSPOSE_CONV": 1, "CONV_3D": 1}
_TFLITE_FOLLOW = {"DENSIFY", "DEQUANTIZE"}
_TFLITE_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8,
                  "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT4": None}
_ONNX_WEIGHT_OPS = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1, "QLinearConv": 3,
                    "MatMulInteger": 1, "ConvInteger": 1}
_ONNX_FOLLOW = {"Transpose", "Reshape", "Identity", "Cast"}


def _pick_name(candidates: list[str], layer_names: list[str] | None) -> str | None:
    """The layer a weight belongs to, from its tensor or op names; None when unknown."""
    candidates = [c for c in candidates if c]
    if layer_names:
        for name in candidates:
            for part in name.replace(";", "/").replace(":", "/").split("/"):
                if part in layer_names:
                    return part
        return None
    for name in candidates:
        layer = _layer_from_name(name)
        if layer:
            return layer
    return None


def _assign(entries: list[tuple[list[str], float]],
            layer_names: Iterable[str] | None) -> dict[str, float]:
    """Key each weight by its layer. A weight whose names do not say (TensorFlow renames
    some constants) takes the layer at its position when ``layer_names`` (in model order)
    has exactly one name per weight; otherwise its first tensor name."""
    names = list(layer_names) if layer_names else None
    keys = [_pick_name(candidates, names) for candidates, _ in entries]
    positional = names is not None and len(names) == len(entries) and all(
        key is None or key == name for key, name in zip(keys, names))
    out: dict[str, float] = {}
    for i, ((candidates, value), key) in enumerate(zip(entries, keys)):
        key = key or (names[i] if positional else next((c for c in candidates if c), f"weight{i}"))
        base, n = key, 2
        while key in out:
            key, n = f"{base}#{n}", n + 1
        out[key] = value
    return out


# --------------------------------------------------------------------------- tflite

def tflite_sparsity(path: str | Path, layer_names: Iterable[str] | None = None) -> dict[str, float]:
    """Fraction of exactly-zero (quantized) values in each conv/FC weight of a ``.tflite``."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no 'TFL3' identifier)", where=str(path))
    s = schema()
    model = s.ModelT.InitFromPackedBuf(raw, 0)
    op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    entries: list[tuple[list[str], float]] = []
    sg = model.subgraphs[0]
    producer = {}
    ops = []
    for op in sg.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "?")
        ops.append((name, op))
        for t in (op.outputs if op.outputs is not None else []):
            producer[int(t)] = (name, op)
    for name, op in ops:
        if name not in _TFLITE_WEIGHT_OPS or len(op.inputs) <= _TFLITE_WEIGHT_OPS[name]:
            continue
        index = int(op.inputs[_TFLITE_WEIGHT_OPS[name]])
        while index in producer and producer[index][0] in _TFLITE_FOLLOW:
            index = int(producer[index][1].inputs[0])
        if index < 0 or index in producer:
            continue   # a weight computed at run time: not a stored constant
        tensor = sg.tensors[index]
        zeros = _tflite_zero_fraction(tensor, model.buffers[tensor.buffer], raw,
                                      type_names.get(int(tensor.type), "?"))
        if zeros is None:
            continue
        outputs = [_str(sg.tensors[int(t)].name) for t in op.outputs]
        entries.append(([_str(tensor.name), *outputs], zeros))
    return _assign(entries, layer_names)


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _tflite_zero_fraction(tensor, buffer, raw: bytes, type_name: str) -> float | None:
    dtype = _TFLITE_DTYPES.get(type_name)
    if dtype is None or buffer is None:
        return None
    if buffer.data is not None and len(buffer.data) > 0:
        data = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    elif getattr(buffer, "offset", 0) and getattr(buffer, "size", 0):
        data = raw[buffer.offset:buffer.offset + buffer.size]
    else:
        return None
    values = np.frombuffer(data, dtype=dtype)
    total = int(np.prod(tensor.shape)) if tensor.shape is not None else values.size
    q = tensor.quantization
    zero_points = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [0])
    if tensor.sparsity is not None:
        # Sparse encoding: only the kept blocks are stored; everything else is zero.
        if zero_points.size > 1 and np.any(zero_points != 0):
            return None   # per-channel non-zero zero points cannot be told apart here
        nonzero = int(np.count_nonzero(values != zero_points.flat[0]))
        return 1.0 - nonzero / total
    if values.size != total:
        return None
    if zero_points.size > 1:
        shape = [1] * len(tensor.shape)
        shape[int(q.quantizedDimension)] = zero_points.size
        is_zero = values.reshape(tensor.shape) == zero_points.reshape(shape)
    else:
        is_zero = values == zero_points.flat[0]
    return float(np.count_nonzero(is_zero) / total)


# --------------------------------------------------------------------------- onnx

def onnx_sparsity(path: str | Path, layer_names: Iterable[str] | None = None) -> dict[str, float]:
    """Fraction of exactly-zero values in each Conv/MatMul/Gemm weight of an ``.onnx``
    (float initializers, or int8 QDQ weights compared with their zero points)."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:   # DecodeError, OSError ...
        raise InputError(f"onnx cannot load it ({exc})", where=str(path)) from None
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for node in graph.node:   # Constant nodes are initializers too
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    inits[node.output[0]] = attr.t
    producer = {o: n for n in graph.node for o in n.output}
    entries: list[tuple[list[str], float]] = []

    def array(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    for node in graph.node:
        slot = _ONNX_WEIGHT_OPS.get(node.op_type)
        if slot is None or len(node.input) <= slot:
            continue
        name, hops = node.input[slot], 0
        zero_point, axis = None, None
        while name not in inits and name in producer and hops < 4:
            prev = producer[name]
            if prev.op_type == "DequantizeLinear":
                zero_point = array(prev.input[2]) if len(prev.input) > 2 else None
                axis = next((a.i for a in prev.attribute if a.name == "axis"), 1)
            elif prev.op_type not in _ONNX_FOLLOW:
                break
            name, hops = prev.input[0], hops + 1
        values = array(name)
        if values is None or values.ndim < 2:
            continue   # not a stored weight (an activation times an activation, a bias)
        if node.op_type in ("QLinearConv",):
            zero_point = array(node.input[5]) if len(node.input) > 5 else None
            axis = 0
        is_zero = _zero_mask(values, zero_point, axis)
        entries.append(([node.name, name], float(np.count_nonzero(is_zero) / values.size)))
    return _assign(entries, layer_names)


def _zero_mask(values: np.ndarray, zero_point: np.ndarray | None, axis: int | None) -> np.ndarray:
    if zero_point is None or zero_point.size == 0:
        return values == 0
    if zero_point.size == 1:
        return values == zero_point.reshape(()).item()
    shape = [1] * values.ndim
    shape[axis if axis is not None and axis >= 0 else values.ndim + (axis or 0)] = zero_point.size
    return values == zero_point.reshape(shape)


# --------------------------------------------------------------------------- keras and reports

def keras_layer_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each layer's kernel (depthwise and pointwise summed)."""
    out = {}
    for layer in model.layers:
        zeros = total = 0
        for weight in layer.weights:
            if weight.name.split(":")[0].endswith(("kernel", "depthwise_kernel", "pointwise_kernel")):
                value = weight.numpy()
                zeros += int(np.count_nonzero(value == 0))
                total += value.size
        if total:
            out[layer.name] = zeros / total
    return out


def compare(keras: dict[str, float], **artifacts: dict[str, float]) -> dict[str, dict[str, float]]:
    """One row per layer: ``{"keras": .., "<artifact>": ..}``; a missing figure is left out."""
    rows: dict[str, dict[str, float]] = {}
    for name, value in keras.items():
        rows.setdefault(name, {})["keras"] = value
    for label, values in artifacts.items():
        for name, value in values.items():
            rows.setdefault(name, {})[label] = value
    return rows


def encoding_sizes(model, precision: str, *, representative: np.ndarray | None = None,
                   int8_io: bool = False, quantization_aware: bool = False) -> dict[str, int]:
    """Bytes of ``model`` converted at ``precision``: raw and gzip, dense and in the TFLite
    sparse encoding (the dense file re-encoded by :func:`edgeprune.export.tflite.sparsify`)."""
    from ..export.tflite import sparsify, to_tflite

    kwargs = dict(representative=representative, int8_io=int8_io,
                  quantization_aware=quantization_aware)
    dense = to_tflite(model, precision, **kwargs)
    sparse = sparsify(dense)
    return {"size_bytes": len(dense), "gzip_bytes": gzip_size(dense),
            "sparse_size_bytes": len(sparse), "sparse_gzip_bytes": gzip_size(sparse)}
