"""Validate a model for a microcontroller with TensorFlow Lite Micro (TFLM).

``TflmDevice`` runs the model through the real tflite-micro interpreter (the
``tflite_micro`` package: TFLM's reference kernels compiled for this machine):

1. op check: every op must be one TFLM registers. An unsupported op is an
   :class:`UnsupportedError` naming the ops and the Keras layers they came from.
2. the smallest tensor arena that works, found by measurement. The interpreter's
   own "Arena allocation total" is a hint, not the answer (for an 8x8 CNN it
   printed 2,912 bytes where 3,008 are needed), and an arena that is too small
   can crash the process, so each size is tried in a forked child of a probe
   process: an upward search from the hint, then a bisection on multiples of
   ``alignment``; the result is verified once more in a fresh process.
   Results are cached per model sha256 for the life of the process.
3. every input run at that arena size (int8 I/O quantized and outputs
   dequantized exactly as ``runner.py`` does), with host wall-clock timings that
   say nothing about a Cortex-M (``latency_is_meaningful=False``).

The subprocess code (``_WORKER``) needs only numpy and tflite_micro.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..devices.base import RunRequest, RunResult
from ..errors import DeviceError, InputError, UnsupportedError
from ..mcu.measure import measure_on_mcu, settings_for
from ..measure.tflite_graph import OpInfo, describe_op, read_graph

ALIGNMENT_BYTES = 16
PROBE_TIMEOUT_S = 120

# Builtin op -> the tflite::MicroMutableOpResolver method that registers it: the ops
# a firmware can register by name. From TFLM's micro_mutable_op_resolver.h.
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual",
    "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOG_SOFTMAX": "AddLogSoftmax", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D", "MAXIMUM": "AddMaximum", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# Messages the interpreter prints when it has no kernel for an op.
_MISSING_OP = (re.compile(r"Failed to get registration from op code (\w+)"),
               re.compile(r"Didn't find op for (?:builtin|custom) opcode '([^']+)'"))
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")

# Runs in a fresh Python process: `python -c _WORKER MODE MODEL ARENA [...]`.
#   probe MODEL ARENA N_INPUTS            allocate, invoke once on zeros; exit 0 or 3
#   serve MODEL N_INPUTS TIMEOUT_S        probe each arena size read from stdin ("SIZE"
#                                         or "SIZE inspect") in a forked child; one JSON
#                                         line per size, with the child's messages
#   run MODEL ARENA INPUTS.npy OUT.npy WARMUP REPEATS MIN_TIME_S
# Prints one JSON line on stdout; the interpreter's own messages go to stderr.
_WORKER = r'''
import json, sys, time
import numpy as np
from tflite_micro.python.tflite_micro import runtime
try:
    from tflite_micro.python.tflite_micro._version import __version__ as version
except Exception:
    version = "unknown"

def quantize(x, d):
    q = d["quantization_parameters"]
    scale = float(q["scales"][0]) if len(q["scales"]) else 0.0
    zero = int(q["zero_points"][0]) if len(q["zero_points"]) else 0
    x = x[None, ...].astype(np.float32)
    if d["dtype"] in (np.int8, np.uint8, np.int16) and scale:
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    return x.astype(d["dtype"])

def dequantize(y, d):
    q = d["quantization_parameters"]
    scale = float(q["scales"][0]) if len(q["scales"]) else 0.0
    zero = int(q["zero_points"][0]) if len(q["zero_points"]) else 0
    if d["dtype"] in (np.int8, np.uint8, np.int16) and scale:
        y = (y.astype(np.float32) - zero) * scale
    return y[0].astype(np.float32)

def probe(interp, n_inputs):
    for i in range(n_inputs):
        d = interp.get_input_details(i)
        interp.set_input(np.zeros(d["shape"], d["dtype"]), i)
    interp.invoke()

def serve(model, n_inputs, timeout_s):
    # One arena size per stdin line; each is tried in a forked child, so a crash or a
    # heap overrun from a too-small arena dies with the child, and the imports are paid once.
    import os, signal
    for line in sys.stdin:
        size, inspect = int(line.split()[0]), line.split()[1:] == ["inspect"]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            fd = os.open("probe.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            signal.alarm(int(timeout_s))
            try:
                interp = runtime.Interpreter.from_file(model, arena_size=size)
                probe(interp, int(n_inputs))
                if inspect:
                    interp.print_allocations()
            except BaseException as exc:
                os.write(2, ("%s: %s\n" % (type(exc).__name__, exc)).encode())
                os._exit(3)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        with open("probe.err", errors="replace") as fh:
            lines = [ln.strip() for ln in fh if ln.strip()]
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                why = "killed by %s" % signal.Signals(sig).name
            except ValueError:
                why = "killed by signal %d" % sig
        else:
            why = "; ".join(lines[-3:])
        ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        print(json.dumps({"size": size, "ok": ok, "why": "" if ok else why,
                          "log": "\n".join(lines[-40:])}), flush=True)
    return 0

def main(mode, model, arena, *rest):
    if mode == "serve":
        return serve(model, arena, rest[0])
    try:
        interp = runtime.Interpreter.from_file(model, arena_size=int(arena))
    except Exception as exc:
        print(json.dumps({"ok": False, "stage": "allocate", "error": str(exc), "version": version}))
        return 3
    if mode == "probe":
        try:
            probe(interp, int(rest[0]))
        except Exception as exc:
            print(json.dumps({"ok": False, "stage": "invoke", "error": str(exc), "version": version}))
            return 3
        print(json.dumps({"ok": True, "version": version}))
        return 0
    inputs_path, outputs_path, warmup, repeats, min_time_s = rest
    inputs = np.load(inputs_path, allow_pickle=False)
    din, dout = interp.get_input_details(0), interp.get_output_details(0)
    outputs = []
    try:
        for sample in inputs:
            interp.set_input(quantize(sample, din), 0)
            interp.invoke()
            outputs.append(dequantize(interp.get_output(0), dout))
        interp.set_input(quantize(inputs[0], din), 0)
        for _ in range(int(warmup)):
            interp.invoke()
        latency, started = [], time.perf_counter_ns()
        deadline = started + int(float(min_time_s) * 1e9)
        while len(latency) < int(repeats) or time.perf_counter_ns() < deadline:
            t0 = time.perf_counter_ns()
            interp.invoke()
            latency.append((time.perf_counter_ns() - t0) / 1e6)
            if len(latency) >= 100000:
                break
    except Exception as exc:
        print(json.dumps({"ok": False, "stage": "invoke", "error": str(exc), "version": version}))
        return 3
    np.save(outputs_path, np.stack(outputs) if outputs else np.zeros((0,), np.float32))
    print(json.dumps({"ok": True, "version": version, "latency_ms": latency}))
    return 0

sys.exit(main(*sys.argv[1:]))
'''


@dataclass(frozen=True)
class Probe:
    """One attempt: ``arena_bytes`` and whether allocate + invoke worked."""

    arena_bytes: int
    ok: bool
    why: str = ""            # the interpreter's message, or the signal that killed it
    log: str = field(default="", repr=False, compare=False)   # what the interpreter printed


@dataclass(frozen=True)
class ArenaSearch:
    """The smallest arena that works for one model, and how it was found."""

    min_bytes: int                     # a multiple of ``alignment``; min_bytes - alignment fails
    reported_bytes: int | None         # what TFLM's RecordingMicroAllocator printed
    alignment: int
    seconds: float
    probes: tuple[Probe, ...] = field(default=())
    runtime: str = ""


_ARENA_CACHE: dict[tuple[str, int], ArenaSearch] = {}


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def unsupported_ops(path: str | Path) -> list[OpInfo]:
    """The ops of the model that no MicroMutableOpResolver method registers (static check)."""
    return [op for op in read_graph(path).ops
            if op.is_custom or op.name not in RESOLVER_METHODS]


def find_min_arena(path: str | Path, *, alignment: int = ALIGNMENT_BYTES) -> ArenaSearch:
    """Measure the smallest tensor arena (a multiple of ``alignment``) that runs the model.

    Each size is tried (allocate, invoke once on zeros) in a child forked from one
    probe process, so a crash or heap overrun takes only that child; the answer is
    then verified in a fresh process.
    Raises :class:`UnsupportedError` when the model uses an op TFLM lacks, and
    :class:`DeviceError` when tflite_micro is missing or nothing up to 1 GiB works.
    """
    path = Path(path)
    if alignment < 1 or alignment & (alignment - 1):
        raise InputError(f"alignment = {alignment} is not a power of two", where="alignment")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cached = _ARENA_CACHE.get((digest, alignment))
    if cached is not None:
        return cached
    started = time.perf_counter()
    graph = read_graph(path)
    n_inputs = len(graph.inputs)
    generous = align_up(max(8 << 20, 32 * path.stat().st_size), alignment)
    probes: list[Probe] = []
    with _ProbeServer(path, n_inputs) as server:
        first = server.probe(generous, inspect=True)
        if not first.ok:
            _raise_for_failure(path, generous, first.why, first.log)
        match = _ARENA_TOTAL.search(first.log)
        reported = int(match.group(1)) if match else None
        hi = _bisect(server, probes, reported, alignment, path)
    verify = _call("probe", path, hi, str(n_inputs))      # a fresh process: it must repeat
    probes.append(Probe(hi, verify.ok, verify.why))
    if not verify.ok:
        raise DeviceError(f"an arena of {hi} bytes worked in the search but failed on its own "
                          f"({verify.why})", where=str(path),
                          fix="report this: TFLM's allocation is not deterministic here")
    search = ArenaSearch(min_bytes=hi, reported_bytes=reported, alignment=alignment,
                         seconds=time.perf_counter() - started, probes=tuple(probes),
                         runtime=f"tflite-micro {verify.version} reference kernels")
    _ARENA_CACHE[(digest, alignment)] = search
    return search


def _bisect(server: "_ProbeServer", probes: list[Probe], reported: int | None, alignment: int,
            path: Path) -> int:
    """Upward search from the reported total, then bisection; returns the smallest size
    that works (assuming any larger one works too, which is how TFLM allocates)."""

    def works(size: int) -> bool:
        probes.append(server.probe(size))
        return probes[-1].ok

    lo, hi = 0, None                       # lo: largest size known to fail (0 always does)
    size = align_up(max(reported or alignment, alignment), alignment)
    step = max(alignment, align_up(size // 8, alignment))
    while hi is None:
        if works(size):
            hi = size
        else:
            lo, size, step = size, size + step, step * 2
            if size > (1 << 30):
                raise DeviceError(f"no arena up to 1 GiB ran the model (last: {probes[-1].why})",
                                  where=str(path), fix="check the model runs with tflite_micro at all")
    while hi - lo > alignment:
        mid = align_up((lo + hi) // 2, alignment)
        if mid >= hi:
            mid = hi - alignment
        if works(mid):
            hi = mid
        else:
            lo = mid
    return hi


class _ProbeServer:
    """The ``serve`` worker: one process that forks a child per arena size."""

    def __init__(self, path: Path, n_inputs: int):
        self._tmp = tempfile.TemporaryDirectory(prefix="edgeprune-tflm-")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, "serve", str(path.resolve()), str(n_inputs),
             str(PROBE_TIMEOUT_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=self._tmp.name)

    def probe(self, size: int, inspect: bool = False) -> Probe:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{size} inspect\n" if inspect else f"{size}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise DeviceError(f"the TFLM probe process stopped: {err.strip()[-500:]}",
                              where="tflm", fix="check that tflite_micro imports: "
                                                "python -c 'import tflite_micro'")
        reply = json.loads(line)
        return Probe(int(reply["size"]), bool(reply["ok"]), str(reply["why"]), str(reply["log"]))

    def __enter__(self) -> "_ProbeServer":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        self._tmp.cleanup()


@dataclass
class _Outcome:
    ok: bool
    why: str
    stderr: str
    version: str
    result: dict


def _call(mode: str, path: Path, arena: int, *rest: str, timeout_s: float = PROBE_TIMEOUT_S) -> _Outcome:
    cmd = [sys.executable, "-c", _WORKER, mode, str(path.resolve()), str(int(arena)), *rest]
    with tempfile.TemporaryDirectory(prefix="edgeprune-tflm-") as cwd:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=cwd)
        except subprocess.TimeoutExpired:
            return _Outcome(False, f"timed out after {timeout_s:.0f} s", "", "unknown", {})
    result: dict = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        why = f"the process was killed by {name}"
    elif "tflite_micro" in proc.stderr and "ModuleNotFoundError" in proc.stderr:
        raise DeviceError("tflite_micro is not importable by " + sys.executable,
                          where="tflm", fix="pip install tflite-micro")
    else:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        why = "; ".join(lines[-3:]) or result.get("error", f"exit status {proc.returncode}")
    ok = proc.returncode == 0 and bool(result.get("ok"))
    return _Outcome(ok, "" if ok else why, proc.stderr, str(result.get("version", "unknown")), result)


def _raise_for_failure(path: Path, arena: int, why: str, log: str) -> None:
    """The model failed with a generous arena: name the missing ops, or say what TFLM said."""
    graph = read_graph(path)
    reported = {m.group(1) for rx in _MISSING_OP for m in rx.finditer(log)}
    if reported:
        # The interpreter stops at the first op it lacks; the static list names the
        # other ops it is unlikely to have, so one round of fixes can cover them all.
        missing = [op for op in graph.ops if op.name in reported]
        suspect = sorted({op.name for op in graph.ops if op.name not in reported
                          and (op.is_custom or op.name not in RESOLVER_METHODS)})
        listed = ", ".join(describe_op(op) for op in missing) or ", ".join(sorted(reported))
        also = (f"; these ops have no TFLM resolver method either: {', '.join(suspect)}"
                if suspect else "")
        raise UnsupportedError(
            f"TFLite Micro has no kernel for {', '.join(sorted(reported))}: {listed}{also}",
            where=str(path),
            expected="only ops TFLite Micro registers (CONV_2D, DEPTHWISE_CONV_2D, "
                     "FULLY_CONNECTED, MAX_POOL_2D, RESHAPE, SOFTMAX, ADD, ...)",
            fix="rebuild those layers from supported ops (e.g. a Tile as Concatenate, "
                "LocalResponseNormalization as BatchNormalization), or write a TFLM custom "
                "kernel and register it in the firmware")
    raise UnsupportedError(
        f"TFLite Micro could not run the model even with a {arena}-byte arena: {why}",
        where=str(path), fix="check the op types and tensor types TFLite Micro supports "
                             "(full int8 or float32; no dynamic shapes)")


class TflmDevice:
    """A microcontroller, validated with TFLite Micro's reference kernels on this machine."""

    kind = "tflm"

    def __init__(self, profile=None, *, alignment: int = ALIGNMENT_BYTES):
        self.profile = profile
        self.alignment = alignment

    def describe(self) -> str:
        settings = settings_for(self.profile)
        if settings is None:
            return "tflm (host, reference kernels)"
        return (f"tflm (host, reference kernels) and an emulated {settings.core} "
                f"({settings.kernels} kernels)")

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        artifact = Path(artifact)
        search = find_min_arena(artifact, alignment=self.alignment)
        graph = read_graph(artifact)
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise UnsupportedError(
                f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs",
                where=str(artifact), expected="one input and one output",
                fix="validate multi-input models with a custom harness")
        with tempfile.TemporaryDirectory(prefix="edgeprune-tflm-") as tmp:
            in_path, out_path = Path(tmp) / "inputs.npy", Path(tmp) / "outputs.npy"
            np.save(in_path, np.asarray(inputs, dtype=np.float32))
            outcome = _call("run", artifact, search.min_bytes, str(in_path), str(out_path),
                            str(request.warmup), str(request.repeats), str(request.min_time_s),
                            timeout_s=max(PROBE_TIMEOUT_S, 10 * len(inputs)))
            if not outcome.ok:
                raise DeviceError(
                    f"the model failed with the measured minimum arena of {search.min_bytes} "
                    f"bytes on real inputs: {outcome.why}", where=str(artifact),
                    fix="report this; meanwhile give the firmware more headroom")
            outputs = np.load(out_path, allow_pickle=False)
        flash = artifact.stat().st_size
        result = RunResult(
            outputs=outputs, latency_ms=list(outcome.result["latency_ms"]),
            runtime=search.runtime, where="tflm (host, reference kernels)",
            latency_is_meaningful=False, arena_bytes=search.min_bytes,
            extra={"arena_reported_bytes": search.reported_bytes,
                   "arena_search_s": round(search.seconds, 3),
                   "arena_probes": len(search.probes),
                   "arena_alignment": search.alignment,
                   "flash_bytes": flash,
                   "flash_note": "the .tflite bytes only; TFLM's code and the op kernels are not counted",
                   "ops": list(graph.op_names()),
                   "ops_without_resolver_method": [op.name for op in unsupported_ops(artifact)]})
        settings = settings_for(self.profile, self.alignment)
        if settings is not None:   # the real kernels on the emulated core (edgeprune/mcu)
            n = min(settings.samples, len(inputs))
            mcu = measure_on_mcu(artifact, np.asarray(inputs[:n], np.float32), outputs[:n],
                                 search.min_bytes, settings)
            result.instructions_per_invoke = mcu.counts
            result.instructions_by = mcu.figures["instructions_per_invoke"]["by"]
            result.extra.update(figures=mcu.figures, mcu_build=mcu.facts)
        return result

