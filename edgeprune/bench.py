"""`edgeprune bench`: measure an existing .tflite or .onnx on a target, compressing nothing.

Inputs are deterministic pseudo-random samples shaped like the artifact's input
(seed 0), so the figures are latency, instructions and memory, not accuracy.
On an emulated board there is no wall time to measure: the result has the
instruction counts and the board's latency estimate, labelled with its thread
count, calibration and error band, and no ``latency_ms``. A .tflite's operators
are also timed (or counted) one by one: ``ops``, the costliest in the terminal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .devices import RunRequest, device_for
from .devices.local import LocalDevice
from .devices.target_runs import emulated_figures, op_repeats
from .errors import ConfigError, InputError
from .measure.latency import latency_stats
from .measure.ops import ops_figure, render_top_ops
from .measure.size import sizes
from .report.bench_model import checked_bench
from .targets import load_target

SAMPLES = 8


def input_shape_of(path: Path) -> tuple[int, ...]:
    try:
        if path.suffix == ".onnx":
            import onnxruntime as ort

            shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        else:
            from .runtimes.runner import _litert_interpreter

            interp, _ = _litert_interpreter(str(path), 1, "none")
            shape = interp.get_input_details()[0]["shape"].tolist()
    except Exception as exc:
        raise InputError(f"cannot be loaded ({str(exc).splitlines()[0][:200]})", where=str(path),
                         expected="a .tflite or .onnx file", fix="check the file is complete") from None
    dims = [d for d in shape[1:]]
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        raise InputError(f"input shape {shape} is not static", where=str(path),
                         expected="a fixed input shape apart from the batch dimension")
    return tuple(dims)


def bench_artifact(artifact: str | Path, target: str, *, repeats: int | None = None, log=print) -> dict:
    path = Path(artifact)
    if not path.is_file():
        raise InputError("no artifact here", where=str(path), fix="pass a .tflite or .onnx file")
    if path.suffix not in (".tflite", ".onnx"):
        raise InputError(f"unknown artifact type {path.suffix!r}", where=str(path),
                         expected="a .tflite or .onnx file")
    profile = load_target(target)
    fmt = "onnx" if path.suffix == ".onnx" else "tflite"
    engine = profile.runtime.engine
    if (engine == "onnxruntime") != (fmt == "onnx"):
        raise ConfigError(f"target {profile.name!r} runs {engine}, which cannot run a .{fmt} file",
                          where="--target", fix="pick a target whose runtime runs this format")
    x = np.random.default_rng(0).random((SAMPLES, *input_shape_of(path)), dtype=np.float32)
    from .measure.artifacts import DEVICE_REQUESTS

    settings = dict(DEVICE_REQUESTS.get(profile.device.kind, DEVICE_REQUESTS["local"]))
    if repeats is not None:
        settings["repeats"] = repeats
    device = LocalDevice(profile) if profile.device.kind in ("local", "rules") else device_for(profile)
    req = RunRequest(engine=engine, threads=profile.runtime.threads, delegate=profile.runtime.delegate,
                     op_repeats=op_repeats(profile, True), **settings)
    log(f"measuring {path.name} on {device.describe()}")
    run = device.run(path, x, req)
    out = {"artifact": str(path), "target": profile.name, "device": run.where, "runtime": run.runtime,
           **sizes(path)}
    if run.latency_is_meaningful:
        out["latency_ms"] = {**latency_stats(run.latency_ms), "method": "measured",
                             "by": f"{run.runtime} on {run.where}"}
    out.update(emulated_figures(run, profile, path))
    if run.ops:
        out["ops"] = ops_figure(run, profile, out.get("latency_estimate_ms") or out.get("latency_ms"))
    if run.arena_bytes is not None:
        out["arena_bytes"] = run.arena_bytes
    out.update(run.extra.get("figures", {}))   # the device's own (emulated Cortex-M: edgeprune/mcu)
    return checked_bench(out)


def render(result: dict) -> str:
    lines = [f"{result['artifact']} on {result['device']} ({result['runtime']})",
             f"  size {result['size_bytes']} B, gzip {result['gzip_bytes']} B"]
    if "latency_ms" in result:
        lat = result["latency_ms"]
        lines.append(f"  latency median {lat['value']:.4f} ms, p90 {lat['p90']:.4f} ms, "
                     f"min {lat['min']:.4f} ms, n={lat['n']} (measured)")
    if "instructions_per_invoke" in result:
        ins = result["instructions_per_invoke"]
        lines.append(f"  instructions per invoke {ins['value']:,} (spread {ins['spread']:.2%}, {ins['by']})")
    if "latency_estimate_ms" in result:
        est = result["latency_estimate_ms"]
        lines.append(f"  latency {est['value']:.4f} ms ({est['by']})")
    elif "instructions_per_invoke" in result:
        lines.append("  no latency: wall time under emulation means nothing and this target has "
                     "no [calibration] to estimate one")
    if "arena_bytes" in result:
        lines.append(f"  arena {result['arena_bytes']} B (smallest that works, measured)")
    if result.get("ops"):
        lines.extend("  " + line for line in render_top_ops(Path(result["artifact"]).name, result["ops"]))
    if "ram_bytes" in result:
        fl, ram = result["flash_bytes"], result["ram_bytes"]
        lines.append(f"  flash {fl['value']:,} B (code {fl['code_bytes']:,} + model {fl['model_bytes']:,}), "
                     f"RAM {ram['value']:,} B (arena {ram['arena_bytes']:,} + data "
                     f"{ram['static_data_bytes']:,} + stack {ram['stack_bytes']:,}), linked and run "
                     f"on the emulated core")
    return "\n".join(lines)


from .api import callable_package  # noqa: E402  (edgeprune.bench(...) is the Python API's bench)

callable_package(__name__, "bench")
