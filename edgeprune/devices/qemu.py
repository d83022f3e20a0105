"""Run on an emulated aarch64 board: the real aarch64 runtimes under qemu-aarch64.

Outputs are those of the real Arm kernels (int8 is bit-exact with the host);
wall time under emulation means nothing, so the cost reported is the number of
guest instructions each timed invoke executed, in total and per instruction
class, counted by a QEMU TCG plugin (``plugin/insn_count.c``) between the
runner's getppid() markers. :mod:`edgeprune.devices.cost` turns the classes
into a latency estimate for the board.

The command line, the pinning and the count file are :mod:`.qemu_guest`'s (the
root's smoke test runs the same command); LiteRT's counts repeat exactly,
onnxruntime's within a few instructions (about one run in eight is 14 lower in
some windows: a start-up race with its second thread).

Recommended request under emulation: ``RunRequest(engine, warmup=2, repeats=5)``;
``threads`` is run as 1 and ``min_time_s`` as 0 (the guest's clock stands still),
both recorded in the result's ``extra``. A tiny model's job takes 5 to 15 s,
mostly Python and numpy starting up. Each job is pinned to its own host CPU
(:func:`.qemu_guest.host_cpu`), so jobs started from several threads run side by side.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UnsupportedError
from ..runtimes import runner
from .base import RunRequest, RunResult
from .job import op_rows, write_job
from .qemu_guest import EmulatorRoot, guest_command, host_cpu, read_counts
from .qemu_root import prepare_root, qemu_version

GUEST_JOB = "/job"


class QemuDevice:
    kind = "qemu"

    def __init__(self, profile, *, timeout_s: float = 900.0, log=None):
        self.profile = profile
        self.cpu = profile.device.cpu
        self.timeout_s = timeout_s
        self.log = log or (lambda message: None)

    def describe(self) -> str:
        return f"qemu-aarch64 {self.cpu}"

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        artifact = Path(artifact)
        if not artifact.is_file():
            raise DeviceError("no artifact file here", where=str(artifact))
        layout = EmulatorRoot(prepare_root(log=self.log))
        emulated = dataclasses.replace(request, threads=1, min_time_s=0.0)
        with tempfile.TemporaryDirectory(prefix="edgeprune-qemu-") as tmp, host_cpu() as cpu:
            prefix = Path(tmp) / "prefix"
            prefix.mkdir()
            counts_file = Path(tmp) / "insn-counts.txt"
            job = prefix / GUEST_JOB.lstrip("/")
            ops = write_job(job, artifact, inputs, emulated, mark_invokes=True)
            # qemu resolves a guest path under the prefix only when the file exists there;
            # otherwise the runner would write /job/outputs.npy on the host.
            (job / "outputs.npy").touch()
            cmd, env = guest_command(layout, self.cpu, prefix, counts_file,
                                     ["-s", f"{GUEST_JOB}/runner.py", GUEST_JOB], host_cpu=cpu)
            proc = _run_with_timeout(cmd, env, self.timeout_s, self.describe())
            result = self._result(proc, artifact)
            outputs = np.load(job / "outputs.npy", allow_pickle=False)
            timed = len(result["latency_ms"]) + sum(len(row.get("latency_ms", []))
                                                    for row in result.get("ops", []))
            counts = read_counts(counts_file, expected=timed)
        n = len(result["latency_ms"])
        return RunResult(
            outputs=outputs, latency_ms=result["latency_ms"], runtime=result["runtime"],
            where=self.describe(), latency_is_meaningful=False,
            instructions_per_invoke=counts.windows[:n],
            instructions_by_class=counts.by_class[:n],
            instructions_by=f"qemu-aarch64 {_qemu_version()} TCG plugin, {self.cpu}",
            ops=op_rows(ops, result, counts.windows[n:], counts.by_class[n:]),
            extra={"threads": 1, "threads_requested": request.threads,
                   "min_time_s_requested": request.min_time_s,
                   "delegate": result["delegate"], "guest_threads": counts.vcpus,
                   "python": result.get("python"), "emulator_root": layout.path.name,
                   "host_cpu": cpu})

    def _result(self, proc: subprocess.CompletedProcess, artifact: Path) -> dict:
        result = runner.result_from_stdout(proc.stdout)
        if result is None:
            tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
            raise DeviceError(f"the emulated runner ended without a result (exit {proc.returncode}):"
                              f"\n{tail}", where=self.describe(),
                              fix="run `edgeprune prepare-emulator --force`; if it happens again "
                                  "with this artifact, report it with the message above")
        if result.get("ok"):
            return result
        stage, error = result.get("stage"), result.get("error", "")
        if stage == "load":
            raise UnsupportedError(error, where=str(artifact),
                                   fix=f"the aarch64 runtime on {self.cpu} cannot load this artifact; "
                                       "see the recipe's quantize and tflite_sparse_encoding")
        if stage == "runtime-missing":
            raise DeviceError(error, where=self.describe(),
                              fix="the emulator root is incomplete: run "
                                  "`edgeprune prepare-emulator --force`")
        raise DeviceError(f"the runner failed at stage {stage!r}: {error}", where=self.describe())


# --------------------------------------------------------------------------- helpers


def _run_with_timeout(cmd: list[str], env: dict, timeout_s: float, where: str
                      ) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except OSError as exc:
        raise DeviceError(f"could not start qemu-aarch64: {exc}", where=where,
                          fix="apt-get install qemu-user") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DeviceError(f"the emulated run took longer than {timeout_s:.0f}s", where=where,
                          fix="use fewer inputs or repeats under emulation (warmup=2, repeats=5)"
                          ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@lru_cache(maxsize=None)
def _qemu_version() -> str:
    return qemu_version()
