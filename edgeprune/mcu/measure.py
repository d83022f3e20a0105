"""One model on one emulated Cortex-M: build, run, compare, and the report's figures.

``measure_on_mcu`` is what the ``tflm`` device calls for a profile whose ``[device]``
names a ``core``. It compiles (or finds cached) TFLite Micro for that core with the
chosen kernels, links the harness with the firmware's arena, runs a stated sample of
inputs under ``qemu-system-arm``, checks the outputs against the host's tflite-micro
interpreter (bit-exact expected), and returns the figures of the contract:
``instructions_per_invoke`` (exact; per class), ``latency_estimate_ms``, ``ops``,
``flash_bytes`` (code + model), ``ram_bytes`` (arena + static data + peak stack) and
``mcu_agreement``; with ``kernels = "both"`` also ``reference_kernels``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DeviceError
from ..measure.latency import spread_of
from ..measure.tflite_graph import read_graph
from ..report.schema import figure
from .build import Core, core_spec, library_objects
from .cost import latency_estimate, load_calibration
from .harness import build_harness, quantize_inputs
from .run import McuRun, check_emulator, run_harness
from .sources import load_lock, source_tree

REPEATS = 2          # extra invokes of sample 0: the counts must repeat exactly


@dataclass(frozen=True)
class McuSettings:
    core: str
    fpu: bool = True
    clock_mhz: float | None = None
    kernels: str = "cmsis-nn"          # "cmsis-nn", "reference" or "both"
    samples: int = 8
    arena_headroom_fraction: float = 0.1
    alignment: int = 16


@dataclass
class McuResult:
    figures: dict
    outputs: np.ndarray                # dequantized, the sample's outputs on the MCU
    counts: list[int]                  # instructions per invoke, one per sample
    facts: dict = field(default_factory=dict)


def settings_for(profile, alignment: int = 16) -> McuSettings | None:
    """What to measure on the emulated microcontroller, or None (no ``device.core``)."""
    device = getattr(profile, "device", None)
    if getattr(device, "core", None) is None:
        return None
    return McuSettings(core=device.core, fpu=device.fpu, clock_mhz=device.clock_mhz,
                       kernels=device.kernels, samples=device.samples, alignment=alignment,
                       arena_headroom_fraction=profile.firmware.arena_headroom_fraction)


def measure_on_mcu(tflite: Path, inputs: np.ndarray, host_outputs: np.ndarray, arena_min: int,
                   settings: McuSettings, log=lambda msg: None) -> McuResult:
    """``inputs``: the float32 sample; ``host_outputs``: the host interpreter's outputs for it."""
    check_emulator()
    core = core_spec(settings.core, fpu=settings.fpu)
    graph = read_graph(tflite)
    from ..runtimes.tflm import RESOLVER_METHODS

    methods = [RESOLVER_METHODS[name] for name in graph.op_names()]
    kernel_sets = ["cmsis-nn", "reference"] if settings.kernels == "both" else [settings.kernels]
    tree = source_tree(("core", "reference") if "reference" in kernel_sets else ("core",), log=log)
    inp = graph.inputs[0]
    q = quantize_inputs(inputs, inp.dtype, inp.scale, inp.zero_point)
    arena = _firmware_arena(arena_min, settings)
    runs = {}
    for kernels in kernel_sets:
        started = time.monotonic()
        objects, facts = library_objects(tree, core, kernels, methods, log=log)
        with tempfile.TemporaryDirectory(prefix="edgeprune-mcu-") as tmp:
            linked = time.monotonic()
            harness = build_harness(Path(tmp), tflite, q, arena, tree, core, kernels, objects,
                                    repeats=REPEATS)
            link_s = time.monotonic() - linked
            try:
                run = run_harness(harness, core)
            except DeviceError as exc:   # the harness's folder is temporary: name the model
                raise DeviceError(exc.what, where=f"{tflite} on the emulated {core.name}",
                                  expected=exc.expected, fix=exc.fix) from None
        facts.update(link_s=round(link_s, 2), emulate_s=round(run.seconds, 2),
                     total_s=round(time.monotonic() - started, 2))
        runs[kernels] = (harness, run, facts)
    main = kernel_sets[0]
    harness, run, facts = runs[main]
    outputs = _dequantize(run.outputs, graph.outputs[0])
    figures = _figures(graph, core, settings, main, harness, run, outputs, host_outputs, tree)
    if settings.kernels == "both":
        _, ref_run, _ = runs["reference"]
        figures["reference_kernels"] = _reference_figure(ref_run, run, core, settings, figures)
    return McuResult(figures=figures, outputs=outputs,
                     counts=[w.total for w in run.invokes[:harness.samples]],
                     facts={k: v[2] for k, v in runs.items()})


def _firmware_arena(arena_min: int, settings: McuSettings) -> int:
    from ..export.firmware import ArenaSize

    return ArenaSize(arena_min, settings.arena_headroom_fraction, settings.alignment, "").bytes


def _dequantize(raw: list[bytes], tensor) -> np.ndarray:
    """As the tflite-micro worker dequantizes (runtimes/tflm.py)."""
    dtype = np.dtype(tensor.dtype)
    rows = [np.frombuffer(r, dtype=dtype) for r in raw]
    y = np.stack(rows) if rows else np.zeros((0,), np.float32)
    if dtype.kind in "iu" and tensor.scale:
        y = (y.astype(np.float32) - tensor.zero_point) * tensor.scale
    return y.astype(np.float32).reshape(len(rows), *tensor.shape[1:])


def _runtime_name(tree, core: Core, kernels: str) -> str:
    commit = load_lock()["repos"]["tflite-micro"]["ref"][:8]
    label = "CMSIS-NN" if kernels == "cmsis-nn" else "reference kernels"
    return f"TFLite Micro {commit} + {label} on emulated {core.name} (qemu-system-arm -M {core.machine})"


def _figures(graph, core: Core, settings: McuSettings, kernels: str, harness, run: McuRun,
             outputs: np.ndarray, host_outputs: np.ndarray, tree) -> dict:
    by = _runtime_name(tree, core, kernels)
    counts = [w.total for w in run.invokes[:harness.samples]]
    repeats = [w.total for w in run.invokes[harness.samples:]]
    median = int(np.median(counts))
    figs = {"instructions_per_invoke": figure(
        median, "instructions", by + ", TCG plugin counting between marker calls",
        samples=counts, sample_size=len(counts), spread=spread_of(counts),
        repeat_counts=[counts[0], *repeats], repeat_exact=all(r == counts[0] for r in repeats),
        instructions_by_class=run.invokes[0].by_class, kernels=kernels)}
    cal = load_calibration(core.name)
    estimate = None
    if cal is not None and settings.clock_mhz:
        estimate = latency_estimate(median, settings.clock_mhz, cal, kernels)
        figs["latency_estimate_ms"] = estimate
    figs["ops"] = _ops_figure(graph, run, by, estimate)
    sizes = harness.sizes
    figs["flash_bytes"] = figure(
        sizes["flash_bytes"], "bytes", f"the linked harness ({by.split(' on ')[0]}), arm-none-eabi-size",
        model_bytes=sizes["model_bytes"], code_bytes=sizes["code_bytes"],
        note="code (TFLite Micro, the ops' kernels, startup and a minimal main, newlib-nano) "
             "plus the model array; the harness's sample inputs are not counted")
    stack = run.stack_used
    figs["ram_bytes"] = figure(
        harness.arena_bytes + sizes["static_data_bytes"] + stack, "bytes",
        f"the linked harness and its run ({core.name})", arena_bytes=harness.arena_bytes,
        arena_used_bytes=run.arena_used, static_data_bytes=sizes["static_data_bytes"],
        stack_bytes=stack,
        note="the firmware's arena (measured minimum + headroom) + .data/.bss + the peak stack "
             "measured on the emulated core; no heap is used")
    n = min(len(outputs), len(host_outputs))
    same = [bool(np.array_equal(outputs[i], host_outputs[i])) for i in range(n)]
    diff = float(np.max(np.abs(outputs[:n] - host_outputs[:n]))) if n else 0.0
    figs["mcu_agreement"] = figure(
        float(np.mean(same)) if same else 0.0, "fraction of samples bit-exact",
        f"{by} vs tflite-micro's Python interpreter on this machine", samples=n,
        max_abs_diff=diff, bit_exact=all(same), expected="bit-exact",
        profiled_run_matches=bytes(run.profiled_output) == bytes(run.outputs[0]))
    return figs


def _ops_figure(graph, run: McuRun, by: str, estimate: dict | None) -> dict:
    ops = [op for op in graph.ops if op.subgraph == 0]
    if len(ops) != len(run.ops):
        raise DeviceError(f"the profiler saw {len(run.ops)} ops, the model has {len(ops)}",
                          where=str(graph.path), fix="report this (models with several "
                          "subgraphs are profiled for subgraph 0 only)")
    total = run.profiled_invoke.total
    ms_per_insn = estimate["value"] / max(1, estimate["instructions"]) if estimate else None
    rows = []
    for op, window in zip(ops, run.ops):
        name = op.outputs[0].name if op.outputs else op.name
        rows.append({"index": op.index, "op": op.name, "name": name,
                     "instructions": window.total, "ms": None,
                     "estimate_ms": round(window.total * ms_per_insn, 6) if ms_per_insn else None,
                     "share": round(window.total / total, 6) if total else 0.0,
                     "instructions_by_class": window.by_class})
    return figure(sum(r["instructions"] for r in rows), "instructions",
                  by + ", markers from TFLite Micro's profiler interface around each op",
                  rows=rows, invoke_instructions=total,
                  note="share: of the whole invoke counted in the same (profiled) run; the rest is "
                       "the interpreter between ops")


def _reference_figure(ref: McuRun, cmsis: McuRun, core: Core, settings: McuSettings,
                      figures: dict) -> dict:
    counts = [w.total for w in ref.invokes[:len(cmsis.outputs)]]
    median = int(np.median(counts))
    cmsis_median = figures["instructions_per_invoke"]["value"]
    extra = {}
    cal = load_calibration(core.name)
    if cal is not None and settings.clock_mhz:
        extra["latency_estimate_ms"] = latency_estimate(median, settings.clock_mhz, cal, "reference")
    return figure(median, "instructions", _runtime_name(None, core, "reference"), samples=counts,
                  cmsis_nn_speedup=round(median / cmsis_median, 3) if cmsis_median else None,
                  outputs_equal_cmsis_nn=ref.outputs == cmsis.outputs, **extra)
