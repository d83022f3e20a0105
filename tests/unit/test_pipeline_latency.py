"""Latency names in report.json: ``latency_ms`` only where measured on the target itself
(the ``host`` target, an SSH board), ``host_latency_ms`` for this machine's time on any
other target; and the budget that needs the target's own time says so."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from tflite_chain import fc_chain

from edgeprune.devices.base import RunResult
from edgeprune.budgets import judge_budgets
from edgeprune.measure.artifacts import measure
from edgeprune.report.schema import ArtifactRecord, figure
from edgeprune.targets import load_target
from edgeprune.tasks import OutputTask, Task
from edgeprune.types import Artifact, Dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = fc_chain(tmp_path_factory.mktemp("m") / "model_int8.tflite", layers=1, width=4)
    art = Artifact(name="int8.tflite", path=path, format="tflite", precision="int8",
                   encoding="dense", sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                   parent="compressed.keras", settings={})
    y = np.arange(8) % 4
    task = Task(outputs=(OutputTask(name="out", kind="classification", shape=(4,), num_classes=4),))
    data = Dataset(x_train=np.zeros((8, 3), np.float32), y_train=y, x_val=np.zeros((2, 3)),
                   y_val=y[:2], x_test=np.zeros((8, 3), np.float32), y_test=y, num_classes=4,
                   source="test", sha256="0" * 64, task=task)
    return art, data


def run(where: str, meaningful: bool = True, control: bool = False, **extra) -> RunResult:
    outputs = np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    more = {"control": {"workload": "w", "pairs": [[1.0, 2.0]] * 4}} if control else {}
    return RunResult(outputs=outputs, latency_ms=[0.1, 0.12, 0.11], runtime="litert 2.3.0",
                     where=where, latency_is_meaningful=meaningful, extra=more, **extra)


def test_measure_names_host_latency_latency_ms_on_the_host_target(setup):
    art, data = setup
    m = measure(art, load_target("host"), data, None, run("local x86_64", control=True),
                None)
    assert "latency_ms" in m and "host_latency_ms" not in m
    assert m["latency_ms"]["by"] == "litert 2.3.0 on local x86_64"
    assert m["latency_ms"]["control"]["workload"] == "w"


@pytest.mark.parametrize("target, device", [
    ("cortex-m4", run("tflite-micro reference kernels", meaningful=False, arena_bytes=4096)),
    ("rpi4", run("qemu-aarch64 cortex-a72", meaningful=False, instructions_per_invoke=[9, 9])),
    ("coral-edgetpu", None),
])
def test_measure_names_host_time_host_latency_ms_when_target_is_not_this_machine(setup, target,
                                                                                 device):
    art, data = setup
    profile = load_target(target)
    profile = profile.model_copy(update={"budgets": profile.budgets.model_copy(
        update={"max_latency_ms": 5.0})})
    m = measure(art, profile, data, None, run("local x86_64"), device)
    assert "latency_ms" not in m, "this machine's wall-clock is not the target's"
    assert m["host_latency_ms"]["by"] == "litert 2.3.0 on local x86_64"
    assert "never gated" in m["host_latency_ms"]["note"]
    record = ArtifactRecord(name=art.name, format="tflite", precision="int8", measurements=m)
    baseline = ArtifactRecord(name="baseline.keras", format="keras", precision="float32",
                              measurements={"accuracy": figure(1.0, "fraction", "tf_keras")})
    latency = next(b for b in judge_budgets(profile, record, baseline, art.path, data.task)
                   if b.name == "max_latency_ms")
    if profile.device.kind not in ("qemu", "tflm"):   # emulated cores judge it on the estimate
        assert latency.verdict == "not_measured" and "host_latency_ms" in latency.note


def test_measure_names_board_time_latency_ms_on_an_ssh_target(setup):
    art, data = setup
    m = measure(art, load_target("ssh-aarch64"), data, None, run("local x86_64"),
                run("ssh pi@board", control=True))
    assert m["latency_ms"]["by"] == "litert 2.3.0 on ssh pi@board"
    assert m["latency_ms"]["control"]["pairs"] == [[1.0, 2.0]] * 4
    assert m["host_latency_ms"]["by"] == "litert 2.3.0 on local x86_64"
