"""Real .tflite files built in code, without TensorFlow: a chain of FULLY_CONNECTED ops.

``fc_chain(path, layers=10, width=256)`` writes a float32 model of ``layers`` dense
layers ``width -> width`` (the first one ``inputs -> width``), with the LiteRT
flatbuffer schema. Its cost grows with ``layers``, so ``layers=12`` against
``layers=10`` is a real slowdown of about 20% measured by any runtime: extra work in
the file, not a number written into a report. Used by the tests of ``check`` and by
``benchmarks/check_noise.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fc_chain(path: Path, layers: int = 1, width: int = 4, inputs: int = 3, seed: int = 0) -> Path:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(seed)

    def tensor(shape, buffer, name):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = list(shape), s.TensorType.FLOAT32, buffer, name.encode()
        return t

    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    buffers = [s.BufferT(), s.BufferT()]           # 0: the empty buffer; 1: the input
    tensors = [tensor((1, inputs), 1, "input")]
    operators = []
    previous, fan_in = 0, inputs
    for i in range(layers):
        name = "dense" if i == 0 else f"dense_{i}"
        weight = (rng.standard_normal((width, fan_in)) / np.sqrt(fan_in)).astype(np.float32)
        for data in (weight, np.zeros(width, np.float32)):
            buf = s.BufferT()
            buf.data = np.frombuffer(data.tobytes(), np.uint8)
            buffers.append(buf)
        tensors.append(tensor((width, fan_in), len(buffers) - 2, f"{name}/MatMul"))
        tensors.append(tensor((width,), len(buffers) - 1, f"{name}/bias"))
        buffers.append(s.BufferT())
        tensors.append(tensor((1, width), len(buffers) - 1, f"{name}/out"))
        op = s.OperatorT()
        n = len(tensors)
        op.opcodeIndex, op.inputs, op.outputs = 0, [previous, n - 3, n - 2], [n - 1]
        op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
        op.builtinOptions = s.FullyConnectedOptionsT()
        if i < layers - 1:
            op.builtinOptions.fusedActivationFunction = s.ActivationFunctionType.RELU
        operators.append(op)
        previous, fan_in = n - 1, width
    graph = s.SubGraphT()
    graph.tensors, graph.operators = tensors, operators
    graph.inputs, graph.outputs = [0], [previous]
    model = s.ModelT()
    model.version, model.operatorCodes, model.buffers, model.subgraphs = 3, [code], buffers, [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = Path(path)
    path.write_bytes(builder.Output())
    return path
