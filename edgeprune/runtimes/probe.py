"""What LiteRT did with a .tflite on this machine, measured: whether it loaded and ran
under the target's delegate, which ops the delegate took, which ops read weights stored
in the sparse encoding, and its outputs on a sample of inputs. Also: which op a
runtime's error message is about.

The delegate's share is read from the interpreter's own execution plan: each DELEGATE
node lists the tensors that flow into and out of the partition it replaced, so the
ops between those tensors are the ones the delegate runs; every other op runs on
LiteRT's built-in kernels.

    >>> probe = probe_tflite("model_int8.tflite", threads=1, delegate="xnnpack", inputs=x[:64])
    >>> probe.ran, probe.summary()["ops"][0]
    (True, {"index": 0, "op": "CONV_2D", "layer": "conv1", "sparse_weights": False,
            "delegated": True})
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import runner
from ..measure.tflite_graph import describe_op, layer_of, read_graph, schema

_DELEGATED_NODE = re.compile(r"(?:failed to delegate |)([A-Z][A-Z0-9_]+) node #(\d+)")
_NODE_NUMBER = re.compile(r"Node number (\d+) \(([A-Za-z0-9_]+)\)")
_ONNX_NODE = re.compile(r"[Nn]ode \(([^)]+)\)|node name: ?([^\s,]+)|Node:\s*([^\s,]+)")


@dataclass
class Probe:
    """One load and run of a file; ``outputs`` is None when it did not run."""

    path: Path
    delegate: str
    threads: int
    runtime: str = ""
    loaded: bool = False
    ran: bool = False
    error: str | None = None
    failing_op: str | None = None       # "FULLY_CONNECTED (op 5, layer fc)"
    outputs: np.ndarray | None = None
    ops: list[dict] = field(default_factory=list)
    latency_ms: float | None = None     # median of the timed invokes (when asked for)

    def summary(self) -> dict:
        """The JSON-able part: what ran where (no outputs)."""
        delegated = [op for op in self.ops if op["delegated"]]
        return {"loaded": self.loaded, "ran": self.ran, "error": self.error,
                "failing_op": self.failing_op, "delegate": self.delegate,
                "threads": self.threads, "runtime": self.runtime,
                "ops_delegated": len(delegated), "ops_total": len(self.ops),
                "latency_ms": self.latency_ms,
                "sparse_weight_ops": [op["op"] + (f" ({op['layer']})" if op["layer"] else "")
                                      for op in self.ops if op["sparse_weights"]],
                "ops": self.ops}


def probe_tflite(path: str | Path, *, threads: int, delegate: str,
                 inputs: np.ndarray | None = None, timed: int = 0) -> Probe:
    """Load ``path`` with LiteRT as the runner does, run ``inputs`` (if given) one by one,
    then time ``timed`` invokes of the first (median kept); record what happened. Never
    raises for a runtime failure: that is the result."""
    path = Path(path)
    probe = Probe(path=path, delegate=delegate, threads=threads)
    try:
        model = runner.LiteRTModel(str(path), threads, delegate)
    except runner.RunnerError as exc:
        probe.error = _clean(str(exc))
        probe.failing_op = name_op(str(exc), path)
        probe.ops = _op_table(path, None)
        return probe
    probe.loaded, probe.runtime = True, model.runtime
    probe.ops = _op_table(path, model.interp)
    if inputs is None:
        return probe
    outputs = []
    try:
        for sample in inputs:
            model.set_input(sample)
            model.invoke()
            outputs.append(model.get_output())
    except Exception as exc:  # the runtime's own error types vary (RuntimeError, ValueError)
        probe.error = _clean(f"{type(exc).__name__}: {exc}")
        probe.failing_op = name_op(str(exc), path)
        return probe
    probe.ran = True
    probe.outputs = np.stack(outputs) if outputs else np.zeros((0,), np.float32)
    if timed and len(inputs):
        probe.latency_ms = _median_invoke_ms(model, inputs[0], timed)
    return probe


def _median_invoke_ms(model, sample: np.ndarray, count: int) -> float:
    import time

    model.set_input(sample)
    for _ in range(3):
        model.invoke()
    times = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        model.invoke()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(times))


def _clean(message: str) -> str:
    """The runtime's words without the (temporary) file name, one clause per message."""
    message = re.sub(r"^\S+ could not load \S+: ", "", message.strip())
    return re.sub(r"(?<=\S)(Node number \d+)", r"; \1", message)


def _op_table(path: Path, interp) -> list[dict]:
    graph = read_graph(path)
    sparse = _sparse_tensors(path)
    first = [op for op in graph.ops if op.subgraph == 0]
    densified = {op.outputs[0].index for op in first
                 if op.name == "DENSIFY" and op.inputs and op.inputs[0].index in sparse}
    delegated = _delegated_ops(interp, len(first)) if interp is not None else set()
    table = []
    for op in first:
        reads = {t.index for t in op.inputs}
        table.append({"index": op.index, "op": op.name, "layer": layer_of(op),
                      "sparse_weights": op.name != "DENSIFY" and bool(reads & (sparse | densified)),
                      "delegated": op.index in delegated})
    return table


def _sparse_tensors(path: Path) -> set[int]:
    """Indices of subgraph 0's tensors stored in the sparse encoding."""
    model = schema().ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    tensors = model.subgraphs[0].tensors or []
    return {i for i, t in enumerate(tensors) if t.sparsity is not None}


def _delegated_ops(interp, count: int) -> set[int]:
    """Indices (< ``count``, the file's own ops) of the ops inside a DELEGATE partition."""
    try:
        details = interp._get_ops_details()
    except Exception:  # an interpreter without the introspection call: nothing is claimed
        return set()
    producer = {}
    for op in details[:count]:
        for t in op["outputs"]:
            producer[int(t)] = op
    inside: set[int] = set()
    for node in details[count:]:
        if node["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in node["inputs"]}
        todo = [int(t) for t in node["outputs"]]
        while todo:
            tensor = todo.pop()
            op = producer.get(tensor)
            if op is None or tensor in boundary or op["index"] in inside:
                continue
            inside.add(op["index"])
            todo.extend(int(t) for t in op["inputs"] if int(t) >= 0)
    return inside


def name_op(message: str, path: str | Path) -> str | None:
    """The op a LiteRT or onnxruntime error message is about, as ``"FULLY_CONNECTED (op 5,
    layer fc)"`` (or the ONNX node's name); None when the message does not say."""
    path = Path(path)
    if path.suffix == ".onnx":
        match = _ONNX_NODE.search(message)
        return next((g for g in match.groups() if g), None) if match else None
    index = None
    match = _DELEGATED_NODE.search(message)
    if match:
        index = int(match.group(2))
    else:
        match = _NODE_NUMBER.search(message)
        if match and match.group(2) != "TfLiteXNNPackDelegate":
            index = int(match.group(1))
    if index is None:
        return None
    try:
        ops = [op for op in read_graph(path).ops if op.subgraph == 0]
    except Exception:  # an unreadable file: the number is all there is
        return f"node {index}"
    return describe_op(ops[index]) if 0 <= index < len(ops) else f"node {index}"
