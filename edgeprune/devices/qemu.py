"""Run on an emulated aarch64 board: the real aarch64 runtimes under qemu-aarch64.

Outputs are those of the real Arm kernels (int8 is bit-exact with the host);
wall time under emulation means nothing, so the cost reported is the number of
guest instructions each timed invoke executed, counted by a QEMU TCG plugin
(``plugin/insn_count.c``) between the runner's getppid() markers.

Reproducible counts: the guest must do exactly the same work every run, so
each job runs with

* ``QEMU_CPU`` / ``-cpu`` pinned to the profile's core (never ``max``: its SME
  gives wrong int8 results) and that core's ``/proc/cpuinfo`` and sysfs;
* one runtime thread (the count is the work of one core; thread pools spin);
* fixed hash seed, random seed (``-seed``), environment and paths (the job is
  ``/job`` inside the guest), a pid namespace (the guest is pid 1), one host CPU
  in its affinity mask, and a clock that stands still (libfaketime in the qemu
  process): the runtimes read the clock while loading and onnxruntime in every
  run, so the latencies the runner reports under emulation are all 0;
* the plugin counts the invoking thread only (idle helper threads never leak in).

LiteRT's counts then repeat exactly; onnxruntime's within a few instructions
(about one run in eight is 14 lower in some windows: a start-up race with its
second thread).

Recommended request under emulation: ``RunRequest(engine, warmup=2, repeats=5)``;
``threads`` is run as 1 and ``min_time_s`` as 0 (the guest's clock stands still),
both recorded in the result's ``extra``. A tiny model's job takes 5 to 15 s,
mostly Python and numpy starting up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UnsupportedError
from ..runtimes import runner
from .base import RunRequest, RunResult
from .qemu_root import EmulatorRoot, faketime_library, prepare_root, qemu_version

GUEST_PYTHON = "/usr/bin/python3.11"
GUEST_JOB = "/job"
# The guest's clock stands still at this time (libfaketime's absolute form). Still,
# because the runtimes read it while loading and onnxruntime in every run, and a
# moving clock read by two guest threads in a racy order changed their work by a few
# instructions. In the future, because an absolute timed wait (onnxruntime's hourly
# timer thread) must then sleep rather than time out at once and spin.
FAKE_CLOCK = "2100-01-01 00:00:00"
RANDOM_SEED = "1"
_HOST_ONLY_ENV = ("LD_PRELOAD", "FAKETIME", "FAKETIME_NO_CACHE", "NO_FAKE_STAT",
                  "FAKETIME_DONT_RESET")
_SHARED_ROOT_ENTRIES = ("bin", "etc", "lib", "root", "sbin", "usr", "var")


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
        with tempfile.TemporaryDirectory(prefix="edgeprune-qemu-") as tmp:
            prefix = Path(tmp) / "prefix"
            prefix.mkdir()
            counts = Path(tmp) / "insn-counts.txt"
            job = prefix / GUEST_JOB.lstrip("/")
            _write_job(job, artifact, inputs, emulated)
            cmd, env = guest_command(layout, self.cpu, prefix, counts,
                                     ["-s", f"{GUEST_JOB}/runner.py", GUEST_JOB])
            proc = _run_with_timeout(cmd, env, self.timeout_s, self.describe())
            result = self._result(proc, artifact)
            outputs = np.load(job / "outputs.npy", allow_pickle=False)
            windows, vcpus = read_counts(counts, expected=len(result["latency_ms"]))
        return RunResult(
            outputs=outputs, latency_ms=result["latency_ms"], runtime=result["runtime"],
            where=self.describe(), latency_is_meaningful=False,
            instructions_per_invoke=windows,
            instructions_by=f"qemu-aarch64 {_qemu_version()} TCG plugin, {self.cpu}",
            extra={"threads": 1, "threads_requested": request.threads,
                   "min_time_s_requested": request.min_time_s,
                   "delegate": result["delegate"], "guest_threads": vcpus,
                   "python": result.get("python"), "emulator_root": layout.path.name})

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


# --------------------------------------------------------------------------- the command


def guest_command(layout: EmulatorRoot, cpu: str, prefix: Path, counts: Path,
                  python_args: list[str], *, write_bytecode: bool = False
                  ) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``python3.11 ARGS`` on ``cpu``.

    ``prefix`` (an empty folder, or one holding ``job/``) becomes the guest's
    ``/``: its top-level folders link to the root, ``proc`` and ``sys`` to the
    core's fake CPU description. The plugin writes the marker windows to ``counts``.
    """
    if not layout.cpu_dir(cpu).is_dir():
        raise DeviceError(f"no CPU description for {cpu!r} in the emulator root",
                          where=str(layout.path), fix="run `edgeprune prepare-emulator --force`")
    for entry in _SHARED_ROOT_ENTRIES:
        link = prefix / entry
        if not link.exists() and (layout.root / entry).exists():
            link.symlink_to(layout.root / entry)
    for entry in ("proc", "sys"):
        (prefix / entry).symlink_to(layout.cpu_dir(cpu) / entry)
    faketime = faketime_library()
    if faketime is None:
        raise DeviceError("libfaketime is not installed", where="qemu device",
                          fix="apt-get install libfaketime  (or run .ci/system-deps.sh)")
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C", "LC_ALL": "C", "TZ": "UTC0",
        "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1", "PYTHONCOERCECLOCALE": "0",
        "PYTHONUTF8": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2", "QEMU_CPU": cpu,
        "LD_PRELOAD": str(faketime), "FAKETIME": FAKE_CLOCK, "FAKETIME_NO_CACHE": "1",
        "NO_FAKE_STAT": "1", "FAKETIME_DONT_RESET": "1",
    }
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    plugin = f"{_qemu_escape(layout.plugin)},out={_qemu_escape(counts)}"
    qemu = [shutil.which("qemu-aarch64") or "qemu-aarch64", "-0", GUEST_PYTHON,
            "-seed", RANDOM_SEED, "-cpu", cpu, "-L", str(prefix), "-plugin", plugin]
    for name in _HOST_ONLY_ENV:
        qemu += ["-U", name]
    return [*_isolation(), *qemu, str(layout.python), *python_args], env


def _qemu_escape(path: Path) -> str:
    """QEMU option syntax: a comma inside a value is written twice."""
    return str(path).replace(",", ",,")


@lru_cache(maxsize=None)
def _isolation() -> tuple[str, ...]:
    """A pid namespace (the guest is pid 1) and one host CPU, where the system allows."""
    wrap: tuple[str, ...] = ()
    unshare = shutil.which("unshare")
    if unshare:
        for candidate in ((unshare, "--pid", "--fork", "--kill-child"),
                          (unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child")):
            try:
                ok = subprocess.run([*candidate, "true"], capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                wrap = candidate
                break
    taskset = shutil.which("taskset")
    if taskset:
        wrap += (taskset, "--cpu-list", str(min(os.sched_getaffinity(0))))
    return wrap


def _write_job(job: Path, artifact: Path, inputs: np.ndarray, request: RunRequest) -> None:
    job.mkdir()
    shutil.copy2(runner.__file__, job / "runner.py")
    shutil.copy2(artifact, job / artifact.name)
    np.save(job / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
    (job / "request.json").write_text(json.dumps(request.to_json(artifact.name, mark_invokes=True)))
    # qemu resolves a guest path under the prefix only when the file exists there;
    # otherwise the runner would write /job/outputs.npy on the host.
    (job / "outputs.npy").touch()


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


def read_counts(path: Path, expected: int | None = None) -> tuple[list[int], int]:
    """The plugin's windows (instructions per marked invoke) and the guest threads seen."""
    if not path.is_file():
        raise DeviceError("the instruction-counting plugin wrote nothing", where=str(path),
                          fix="run `edgeprune prepare-emulator --force`")
    lines = path.read_text().splitlines()
    if not lines or lines[0] != "edgeprune-insn-count 1":
        raise DeviceError("not an instruction-count file of this edgeprune", where=str(path),
                          fix="run `edgeprune prepare-emulator --force` to rebuild the plugin")
    header = dict(line.split(" ", 1) for line in lines[1:] if not line.isdigit())
    windows = [int(line) for line in lines[1:] if line.isdigit()]
    problems = [f"{key} = {header[key]}" for key in ("unpaired", "crossed")
                if header.get(key, "0") != "0"]
    if "error" in header:
        problems.append(f"error = {header['error']}")
    if expected is not None and len(windows) != expected:
        problems.append(f"{len(windows)} windows for {expected} timed invokes")
    if problems:
        raise DeviceError("the instruction counts do not match the runner's invokes: "
                          + ", ".join(problems), where=str(path),
                          fix="the runner must bracket each timed invoke with getppid() and "
                              "nothing else may call it; report this")
    return windows, int(header.get("vcpus", "0"))


@lru_cache(maxsize=None)
def _qemu_version() -> str:
    return qemu_version()
