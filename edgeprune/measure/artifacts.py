"""Measure exported artifacts: on this machine, and on the target's device where it runs.

Every figure here is measured on the file by the runtime that runs it (or labelled an
estimate); the cross-checks use the outputs captured here (edgeprune/integrity.py).
"""

from __future__ import annotations

import numpy as np

from ..devices import RunRequest, RunResult, device_for
from ..evaluate import task_figures
from ..progress import stage
from ..report.schema import figure
from ..targets import TargetProfile
from ..types import Artifact, Dataset
from .breakdown import breakdown_onnx, breakdown_tflite
from .latency import latency_stats
from .size import sizes


HOST_REQUEST = dict(warmup=50, repeats=300, min_time_s=0.0)
# Where wall-clock time is the target's own (latency_ms, gated by `check`), a control
# workload is timed beside the model, for check's fallback rule (edgeprune/check/latency.py).
CONTROL = dict(control_pairs=16, control_block_ms=10.0)
DEVICE_REQUESTS = {
    "local": HOST_REQUEST,
    "ssh": {**HOST_REQUEST, **CONTROL},
    "qemu": dict(warmup=2, repeats=5, min_time_s=0.0),
    "tflm": dict(warmup=1, repeats=5, min_time_s=0.0),
}



def validate(artifacts: list[Artifact], profile: TargetProfile, data: Dataset,
             reference: list[np.ndarray] | None, log, outputs: dict | None = None) -> dict[str, dict]:
    """Measure every artifact on this machine, and the target's own artifacts on its device
    (emulated boards: a bounded sample, all artifacts' jobs in parallel; see target_runs);
    ``outputs`` (if given) gets each artifact's outputs on this machine, in the task's output
    order, for the cross-checks."""
    from ..devices.local import LocalDevice
    from ..devices.target_runs import device_runs, op_repeats

    host = LocalDevice(profile)
    device = device_for(profile) if profile.device.kind not in ("local", "rules") else None
    target_format = "onnx" if profile.runtime.engine == "onnxruntime" else "tflite"
    on_device = [art for art in artifacts if device is not None and art.format == target_format
                 and _device_runs(profile, art)]
    results = {}
    with device_runs(device, profile, on_device, data.x_test, log) as runs:
        for art in artifacts:
            engine = "onnxruntime" if art.format == "onnx" else "litert"
            req = RunRequest(engine=engine, threads=profile.runtime.threads,
                             delegate=profile.runtime.delegate, **HOST_REQUEST,
                             op_repeats=op_repeats(profile, profile.device.kind == "local"),
                             **(CONTROL if profile.device.kind == "local" else {}))
            with stage(f"validating {art.name}"):
                host_run = host.run(art.path, data.x_test, req)
                if outputs is not None:
                    outputs[art.name] = _task_outputs(host_run, data, art)
                results[art.name] = measure(art, profile, data, reference, host_run,
                                            runs.result(art.name))
    return results


def _task_outputs(run: RunResult, data: Dataset, art: Artifact) -> np.ndarray:
    """A run's outputs in the task's output order, one row per sample (several outputs
    flattened and concatenated), as :func:`flat_outputs` gives a Keras model's."""
    from ..runtimes.outputs import split_outputs

    return flat_outputs(split_outputs(run.outputs, run.extra.get("outputs_layout"),
                                      [o.name for o in data.task.outputs], str(art.path)))


def flat_outputs(outputs: list[np.ndarray]) -> np.ndarray:
    if len(outputs) == 1:
        return np.asarray(outputs[0], np.float32)
    return np.concatenate([np.asarray(o, np.float32).reshape(len(o), -1) for o in outputs], axis=1)


def _device_runs(profile: TargetProfile, art: Artifact) -> bool:
    # TFLite Micro runs the deployable integer models; hybrid/float16 kernels are not in TFLM.
    return profile.runtime.engine != "tflm" or art.precision in ("int8", "float32")


def measure(art: Artifact, profile: TargetProfile, data: Dataset, reference: list[np.ndarray] | None,
            host_run: RunResult, dev_run: RunResult | None) -> dict:
    from ..devices.target_runs import emulated_figures, host_sample, scored_run
    from .ops import ops_figure
    from ..runtimes.outputs import split_outputs

    scored, by = scored_run(host_run, dev_run)
    outputs = split_outputs(scored.outputs, host_run.extra.get("outputs_layout"),
                            [o.name for o in data.task.outputs], str(art.path))
    m = task_figures(data, outputs, reference, by)
    for key, value in sizes(art.path).items():
        m[key] = figure(value, "bytes", "file size" if key == "size_bytes" else "gzip -9 of the file")
    table = breakdown_tflite(art.path) if art.format == "tflite" else breakdown_onnx(art.path)
    m["breakdown"] = {**table, "method": "measured",
                      "by": "constant tensor bytes and op counts read from the file"}
    # latency_ms only where measured on the target itself; this machine's time otherwise
    on_target = dev_run if dev_run is not None and dev_run.latency_is_meaningful else \
        host_run if profile.device.kind == "local" else None
    if on_target is not None:
        m["latency_ms"] = _latency_figure(on_target)
    if on_target is not host_run:
        m["host_latency_ms"] = _latency_figure(host_run, note="this machine, not the target: "
                                               "shown, never gated")
    if dev_run is not None:
        m["host_agreement"] = _agreement(dev_run, host_sample(host_run, dev_run), art,
                                         profile.runtime.engine, classifier_task(data))
        m["host_agreement"]["samples"] = int(len(dev_run.outputs))
        m.update(emulated_figures(dev_run, profile, art.path))
        if dev_run.arena_bytes is not None:
            m["arena_bytes"] = figure(int(dev_run.arena_bytes), "bytes", by,
                                      note="smallest arena that allocates and invokes, found by trying sizes")
            m["flash_bytes"] = figure(art.size_bytes, "bytes", "model array size",
                                      note="the model only; the interpreter's code is not counted")
        m.update(dev_run.extra.get("figures", {}))   # the device's own (emulated Cortex-M: edgeprune/mcu)
    target_run = dev_run or (host_run if profile.device.kind == "local" else None)
    if target_run is not None and target_run.ops and "ops" not in m:
        m["ops"] = ops_figure(target_run, profile, m.get("latency_estimate_ms") or m.get("latency_ms"))
    return m


def _latency_figure(run: RunResult, **extra) -> dict:
    if "control" in run.extra:
        extra["control"] = run.extra["control"]
    return figure(unit="ms", by=f"{run.runtime} on {run.where}", **latency_stats(run.latency_ms),
                  samples=[round(s, 6) for s in run.latency_ms], **extra)


def _agreement(dev: RunResult, host: RunResult, art: Artifact, engine: str, classifier: bool) -> dict:
    """The device's outputs against this machine's for the same file, within the tolerance
    stated for the precision (edgeprune/integrity.py); ``passed`` False fails the file."""
    from ..integrity import device_check

    return device_check(dev, host, art, engine, classifier=classifier)


def classifier_task(data: Dataset) -> bool:
    """Top-1 agreement means something: one output, a classification."""
    return len(data.task.outputs) == 1 and data.task.outputs[0].kind == "classification"
