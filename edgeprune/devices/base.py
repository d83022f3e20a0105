"""What every device runner returns, and the protocol each one follows.

A device takes an artifact and a batch of inputs, runs them with the target's
runtime where the model will run, and returns the outputs and per-invoke
timings. ``local`` runs on this machine, ``qemu`` on an emulated Arm board,
``ssh`` on a real board, ``tflm`` with TFLite Micro's reference kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass
class RunRequest:
    engine: str                 # "litert" | "onnxruntime" | "tflm"
    threads: int = 1
    delegate: str = "xnnpack"   # "xnnpack" | "none"
    warmup: int = 10
    repeats: int = 50
    min_time_s: float = 0.0
    control_pairs: int = 0      # > 0: also time the runner's control workload beside the model
    control_block_ms: float = 10.0
    op_repeats: int = 0         # > 0: also time each operator of a .tflite alone (per-op cost)

    def to_json(self, artifact_name: str, mark_invokes: bool = False) -> dict:
        out = {"artifact": artifact_name, "engine": self.engine, "threads": self.threads,
               "delegate": self.delegate, "warmup": self.warmup, "repeats": self.repeats,
               "min_time_s": self.min_time_s, "mark_invokes": mark_invokes}
        if self.control_pairs:
            out.update(control_pairs=self.control_pairs, control_block_ms=self.control_block_ms)
        return out


@dataclass
class AbRequest:
    """Two artifacts timed in alternating blocks in one process (the runner's A/B job)."""

    engine: str
    threads: int = 1
    delegate: str = "xnnpack"
    warmup: int = 20
    pairs: int = 20
    block_ms: float = 10.0

    def to_json(self, first: str, second: str) -> dict:
        return {"artifact": first, "ab_artifact": second, "engine": self.engine,
                "threads": self.threads, "delegate": self.delegate, "warmup": self.warmup,
                "ab_pairs": self.pairs, "ab_block_ms": self.block_ms}


@dataclass
class RunResult:
    outputs: np.ndarray                 # float32, dequantized, one row per input
    latency_ms: list[float]             # per timed invoke, wall clock where it ran
    runtime: str                        # e.g. "ai_edge_litert 2.3.0"
    where: str                          # e.g. "local x86_64", "qemu-aarch64 cortex-a72"
    latency_is_meaningful: bool = True  # False under emulation: wall time there means nothing
    instructions_per_invoke: list[int] | None = None   # emulated devices only
    instructions_by: str | None = None
    arena_bytes: int | None = None                     # microcontrollers only
    instructions_by_class: list[dict[str, int]] | None = None   # per timed invoke, emulated only
    # per operator (RunRequest.op_repeats): {"index", "op", "name", "weight_bytes",
    #  "latency_ms": [...] | None,
    #  "instructions": [...] | None, "instructions_by_class": [...] | None, "error": str | None}
    ops: list[dict] | None = None
    extra: dict = field(default_factory=dict)


def run_result(result: dict, outputs: np.ndarray, where: str, *keys: str,
               ops: list[dict] | None = None) -> RunResult:
    """A RunResult from the runner's JSON result, with ``threads``, ``delegate``,
    ``outputs_layout``, the ``keys`` asked for and, when it was timed, the ``control``
    workload in ``extra``."""
    extra = {key: result.get(key) for key in ("threads", "delegate", "outputs_layout", *keys)}
    if "control" in result:
        extra["control"] = result["control"]
    return RunResult(outputs=outputs, latency_ms=result["latency_ms"], runtime=result["runtime"],
                     where=where, ops=ops, extra=extra)


class Device(Protocol):
    kind: str

    def describe(self) -> str:
        """One line: where the runs happen (``qemu-aarch64 cortex-a72``)."""

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        """Run every input once (outputs) and time ``request.repeats`` invokes."""


class AbDevice(Protocol):
    """A device whose wall-clock time is the target's own (this machine, an SSH board)."""

    def run_ab(self, first: Path, second: Path, inputs: tuple[np.ndarray, np.ndarray],
               request: AbRequest) -> dict:
        """The runner's ``ab`` result (pairs of block medians) plus ``runtime`` and ``where``."""
