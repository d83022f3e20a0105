"""Per-operator cost, measured: every operator of a .tflite cut out into a model of its own.

Why this route: ai-edge-litert 2.3's Python ``Interpreter`` exposes no op
profiler (its ``experimental_force_delegate_node_profiling`` flag only changes
what a C++ profiler would record; no Python call installs one or reads one
back), and under emulation there is no clock to profile with anyway. So each
operator is written as a one-op model (its constant inputs kept, its other
inputs made model inputs, its outputs the model's outputs) and the device's
runner times that model, and under qemu counts its instructions, the same way
it times the whole model. The runtime, the delegate and the kernels are the
ones the whole model uses; what an op in isolation does not see is the
neighbouring ops' data left in the caches and any fusion across ops inside
the delegate (XNNPACK fuses little beyond what the converter already fused),
and each one-op invoke carries the fixed invoke overhead once. The sum of the
per-op figures is reported beside the whole model's, so that gap is visible.

Example::

    for op in split_ops("dist/rpi4/model_int8.tflite"):
        print(op.index, op.op, op.name, len(op.data))
    # 0 QUANTIZE serving_default_input:0 ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .tflite_graph import layer_of, read_graph, schema

# Ops that call other subgraphs or keep state between invokes cannot run alone.
_NOT_ALONE = {"WHILE", "IF", "CALL_ONCE", "CALL", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}
OP_FILE = "op_{index:04d}.tflite"


@dataclass(frozen=True)
class OpModel:
    index: int          # the op's position in execution order (subgraph 0)
    op: str             # "CONV_2D"
    name: str           # the Keras layer it came from, else its first output tensor's name
    data: bytes | None  # the one-op model; None when the op cannot run alone
    reason: str = ""    # why not, when data is None
    weight_bytes: int = 0   # its constant inputs' bytes (weights, biases)

    @property
    def file(self) -> str:
        return OP_FILE.format(index=self.index)


def split_ops(path: str | Path) -> list[OpModel]:
    """One model per operator of subgraph 0, in execution order."""
    graph = read_graph(path)
    s = schema()
    model = s.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    sg = model.subgraphs[0]
    out = []
    for op_info, op in zip((o for o in graph.ops if o.subgraph == 0), sg.operators or []):
        name = layer_of(op_info) or (op_info.outputs[0].name if op_info.outputs else "")
        if op_info.name in _NOT_ALONE:
            out.append(OpModel(op_info.index, op_info.name, name, None,
                               f"{op_info.name} calls other subgraphs or keeps state"))
            continue
        if any(sg.tensors[i].isVariable for i in _ints(op.inputs) if i >= 0):
            out.append(OpModel(op_info.index, op_info.name, name, None, "reads a variable tensor"))
            continue
        if all(t.is_constant for t in op_info.inputs):
            out.append(OpModel(op_info.index, op_info.name, name, None,
                               "its inputs are all constants (float16 weights, say): the runtime "
                               "computes it once when loading the model, not per invoke"))
            continue
        constants = sum(len(model.buffers[sg.tensors[i].buffer].data)
                        for i in _ints(op.inputs) if i >= 0 and _has_data(model, sg.tensors[i]))
        out.append(OpModel(op_info.index, op_info.name, name, _one_op_model(s, model, sg, op),
                           weight_bytes=int(constants)))
    return out


def _has_data(model, tensor) -> bool:
    buf = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _one_op_model(s, model, sg, op) -> bytes:
    import copy

    import flatbuffers

    tensor_map: dict[int, int] = {}
    tensors, buffers = [], [s.BufferT()]          # buffer 0: the empty sentinel
    inputs, outputs = [], []

    def keep(index: int) -> int:
        if index < 0:
            return index
        if index not in tensor_map:
            tensor = copy.copy(sg.tensors[index])
            if _has_data(model, tensor):
                buffers.append(model.buffers[tensor.buffer])
                tensor.buffer = len(buffers) - 1
            else:
                tensor.buffer = 0
            tensor_map[index] = len(tensors)
            tensors.append(tensor)
        return tensor_map[index]

    new_op = copy.copy(op)
    new_op.inputs = [keep(i) for i in _ints(op.inputs)]
    for i in _ints(op.inputs):
        if i >= 0 and tensors[tensor_map[i]].buffer == 0 and tensor_map[i] not in inputs:
            inputs.append(tensor_map[i])
    new_op.outputs = [keep(i) for i in _ints(op.outputs)]
    outputs = [i for i in new_op.outputs if i >= 0]
    new_op.intermediates = [keep(i) for i in _ints(op.intermediates)] if op.intermediates is not None \
        else None
    new_op.opcodeIndex = 0

    one = s.ModelT()
    one.version = model.version
    one.description = "one operator cut out by edgeprune"
    one.operatorCodes = [model.operatorCodes[op.opcodeIndex]]
    graph = s.SubGraphT()
    graph.tensors, graph.operators = tensors, [new_op]
    graph.inputs, graph.outputs = inputs, outputs
    graph.name = "main"
    one.subgraphs = [graph]
    one.buffers = buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(one.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
