"""The target's share of validation: which inputs go to the device, jobs in parallel, and
the figures an emulated run adds to an artifact's measurements.

Emulated boards cost minutes, not hours: a qemu job gets a bounded sample of the
test split (``EMULATED_SAMPLE`` inputs, the first ones) to compare with this
machine's outputs of the same file (int8 is bit-exact), counts instructions on a
few invokes, and the jobs of all artifacts run side by side, each pinned to its
own CPU. Accuracy then comes from this machine's run of the same file on the whole
test split, labelled so; the outputs were shown to match on the sample.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..report.schema import figure
from .base import RunRequest, RunResult

EMULATED_SAMPLE = 32
# per-op timing (one-op models, edgeprune.measure.op_models): invokes per op on each kind of
# device; under emulation two are enough (instruction counts repeat), none on microcontrollers
OP_REPEATS = {"local": 20, "ssh": 20, "qemu": 2}


def device_inputs(profile, x: np.ndarray) -> np.ndarray:
    """What the target's device runs: the bounded sample under emulation, all of ``x`` else."""
    return x[:EMULATED_SAMPLE] if profile.device.kind == "qemu" else x


def op_repeats(profile, on_target: bool) -> int:
    """Per-op invokes for a run (0: none): only on the target itself."""
    return OP_REPEATS.get(profile.device.kind, 0) if on_target else 0


class DeviceRuns:
    """The device runs of some artifacts, started at once (emulated: in parallel)."""

    def __init__(self, device, profile, jobs: dict[str, tuple], log):
        from .qemu_guest import parallel_jobs

        self._futures: dict[str, Future] = {}
        parallel = profile.device.kind == "qemu"
        self._pool = ThreadPoolExecutor(max_workers=parallel_jobs() if parallel else 1)
        for name, (path, inputs, request) in jobs.items():
            log(f"validating {name} on {device.describe()}")
            self._futures[name] = self._pool.submit(device.run, path, inputs, request)

    def result(self, name: str) -> RunResult | None:
        future = self._futures.get(name)
        return None if future is None else future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def device_runs(device, profile, artifacts, x: np.ndarray, log) -> Iterator[DeviceRuns]:
    """``artifacts``: those that run on ``device``; yields their runs (see :class:`DeviceRuns`)."""
    from ..measure.artifacts import DEVICE_REQUESTS

    inputs = device_inputs(profile, x)
    jobs = {art.name: (art.path, inputs, RunRequest(
        engine=profile.runtime.engine, threads=profile.runtime.threads,
        delegate=profile.runtime.delegate, op_repeats=op_repeats(profile, True),
        **DEVICE_REQUESTS[profile.device.kind])) for art in artifacts}
    runs = DeviceRuns(device, profile, jobs, log)
    try:
        yield runs
    finally:
        runs.close()


def scored_run(host_run: RunResult, dev_run: RunResult | None) -> tuple[RunResult, str]:
    """The run whose outputs the metrics are computed from, and how to label them."""
    if dev_run is None:
        return host_run, f"{host_run.runtime} on {host_run.where}"
    if len(dev_run.outputs) < len(host_run.outputs):
        return host_run, (f"{host_run.runtime} on {host_run.where}, the same file: {dev_run.where}'s "
                          f"outputs were compared with this machine's on a {len(dev_run.outputs)}-"
                          "input sample (host_agreement)")
    return dev_run, f"{dev_run.runtime} on {dev_run.where}"


def host_sample(host_run: RunResult, dev_run: RunResult) -> RunResult:
    """This machine's run cut to the inputs the device ran (the first ones)."""
    return dataclasses.replace(host_run, outputs=host_run.outputs[:len(dev_run.outputs)])


def emulated_figures(dev_run: RunResult, profile, artifact) -> dict:
    """``instructions_per_invoke`` (with ``instructions_by_class``) and ``latency_estimate_ms``."""
    from .cost import latency_estimate, median_window, weight_bytes
    from ..measure.latency import spread_of

    counts = dev_run.instructions_per_invoke
    if not counts:
        return {}
    extra = {}
    if dev_run.instructions_by_class:
        extra["instructions_by_class"] = median_window(counts, dev_run.instructions_by_class)
    out = {"instructions_per_invoke": figure(int(np.median(counts)), "instructions",
                                             dev_run.instructions_by or dev_run.where,
                                             samples=counts, spread=spread_of(counts), **extra)}
    estimate = latency_estimate(counts, dev_run.instructions_by_class, profile,
                                weight_bytes(artifact))
    if estimate is not None:
        out["latency_estimate_ms"] = estimate
    return out
