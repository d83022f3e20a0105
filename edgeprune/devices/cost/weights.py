"""Bytes of constant data (weights, biases) in a model file: what an invoke reads from
memory when it does not fit in the board's caches (the latency model's memory term)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=64)
def _weight_bytes(path: str, mtime_ns: int, size: int) -> int:
    if path.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper

        model = onnx.load(path)
        return int(sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer))
    from ...measure.tflite_graph import read_graph

    graph = read_graph(path)
    return int(sum(_nbytes(t) for t in graph.tensors if t.is_constant))


def _nbytes(tensor) -> int:
    import numpy as np

    itemsize = {"float32": 4, "int32": 4, "float16": 2, "int16": 2, "int8": 1, "uint8": 1,
                "int64": 8, "float64": 8, "bool": 1, "int4": 1}.get(tensor.dtype, 4)
    return int(np.prod(tensor.shape or (1,))) * itemsize


def weight_bytes(path: str | Path) -> int:
    """Constant bytes of the .tflite (subgraph 0) or .onnx (initializers) at ``path``."""
    stat = Path(path).stat()
    return _weight_bytes(str(path), stat.st_mtime_ns, stat.st_size)
