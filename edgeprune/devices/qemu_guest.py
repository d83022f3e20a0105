"""What every emulated run shares: the prepared folder's layout, the exact
command line that runs the guest's Python under qemu-aarch64, the host CPU each
job is pinned to, and the instruction-count file the plugin writes.

Both the builder (:mod:`.qemu_root`, whose smoke test runs the guest once) and
the device (:mod:`.qemu`) use these; this module imports neither.

Reproducible counts need the guest to do exactly the same work every run, so
each job runs with ``-cpu`` pinned to the profile's core (never ``max``: its SME
gives wrong int8 results) and that core's ``/proc/cpuinfo`` and sysfs; fixed
hash seed, random seed (``-seed``), environment and paths; a pid namespace (the
guest is pid 1); one host CPU in its affinity mask; and a clock that stands
still (libfaketime in the qemu process).

Parallel jobs: :func:`host_cpu` hands each job its own CPU from this process's
affinity mask (a job waits when all are taken), so jobs run side by side
instead of queueing on one core.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from ..errors import DeviceError

PYTHON_VERSION = "3.11"
GUEST_PYTHON = "/usr/bin/python3.11"
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
COUNTS_HEADER = "edgeprune-insn-count 2"


@dataclass(frozen=True)
class EmulatorRoot:
    """A prepared emulator folder and what is in it."""

    path: Path

    @property
    def root(self) -> Path:
        return self.path / "root"

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def plugin(self) -> Path:
        return self.path / "plugin" / "libinsn_count.so"

    def cpu_dir(self, cpu: str) -> Path:
        return self.path / "cpu" / cpu

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())


def faketime_library() -> Path | None:
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                    "/usr/local/lib/faketime/libfaketime.so.1"):
        for hit in sorted(Path("/").glob(pattern.lstrip("/"))):
            return hit
    return None


# --------------------------------------------------------------------------- the command


def guest_command(layout: EmulatorRoot, cpu: str, prefix: Path, counts: Path,
                  python_args: list[str], *, host_cpu: int | None = None,
                  write_bytecode: bool = False) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``python3.11 ARGS`` on ``cpu``.

    ``prefix`` (an empty folder, or one holding ``job/``) becomes the guest's
    ``/``: its top-level folders link to the root, ``proc`` and ``sys`` to the
    core's fake CPU description. The plugin writes the marker windows to ``counts``.
    ``host_cpu`` is the one host CPU the job may use (see :func:`host_cpu`); None:
    the lowest of this process's affinity mask.
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
    pin = host_cpu if host_cpu is not None else min(os.sched_getaffinity(0))
    return [*_isolation(), *_pinned(pin), *qemu, str(layout.python), *python_args], env


def _qemu_escape(path: Path) -> str:
    """QEMU option syntax: a comma inside a value is written twice."""
    return str(path).replace(",", ",,")


@lru_cache(maxsize=None)
def _isolation() -> tuple[str, ...]:
    """A pid namespace (the guest is pid 1), where the system allows one."""
    unshare = shutil.which("unshare")
    if unshare:
        for candidate in ((unshare, "--pid", "--fork", "--kill-child"),
                          (unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child")):
            try:
                ok = subprocess.run([*candidate, "true"], capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                return candidate
    return ()


def _pinned(cpu: int) -> tuple[str, ...]:
    taskset = shutil.which("taskset")
    return (taskset, "--cpu-list", str(cpu)) if taskset else ()


# --------------------------------------------------------------------------- host CPUs

_cpus_lock = threading.Lock()
_free_cpus: queue.Queue | None = None


@contextmanager
def host_cpu() -> Iterator[int]:
    """One CPU of this process's affinity mask for one job, for as long as it runs.

    Jobs started from several threads get different CPUs; when every CPU is taken a
    job waits for one to be handed back. One job per CPU keeps the emulated runs from
    slowing each other down more than the machine must.
    """
    global _free_cpus
    with _cpus_lock:
        if _free_cpus is None:
            _free_cpus = queue.Queue()
            for cpu in sorted(os.sched_getaffinity(0)):
                _free_cpus.put(cpu)
    cpu = _free_cpus.get()
    try:
        yield cpu
    finally:
        _free_cpus.put(cpu)


def parallel_jobs() -> int:
    """How many emulated jobs may run at once: one per CPU this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


# --------------------------------------------------------------------------- the counts


@dataclass(frozen=True)
class Counts:
    """What the plugin recorded: per marked window, the instructions in total and by class."""

    classes: tuple[str, ...]
    windows: list[int]
    by_class: list[dict[str, int]]
    vcpus: int


def read_counts(path: Path, expected: int | None = None) -> Counts:
    """The plugin's windows (instructions per marked invoke) and the guest threads seen."""
    if not path.is_file():
        raise DeviceError("the instruction-counting plugin wrote nothing", where=str(path),
                          fix="run `edgeprune prepare-emulator --force`")
    lines = path.read_text().splitlines()
    if not lines or lines[0] != COUNTS_HEADER:
        raise DeviceError("not an instruction-count file of this edgeprune", where=str(path),
                          expected=f"first line {COUNTS_HEADER!r}",
                          fix="run `edgeprune prepare-emulator --force` to rebuild the plugin")
    header = dict(line.split(" ", 1) for line in lines[1:] if not line.startswith("w "))
    classes = tuple(header.get("classes", "").split())
    rows = [[int(v) for v in line.split()[1:]] for line in lines[1:] if line.startswith("w ")]
    problems = [f"{key} = {header[key]}" for key in ("unpaired", "crossed")
                if header.get(key, "0") != "0"]
    if "error" in header:
        problems.append(f"error = {header['error']}")
    if any(len(row) != len(classes) + 1 or sum(row[1:]) != row[0] for row in rows):
        problems.append("a window whose class counts do not add up to its total")
    if expected is not None and len(rows) != expected:
        problems.append(f"{len(rows)} windows for {expected} timed invokes")
    if problems:
        raise DeviceError("the instruction counts do not match the runner's invokes: "
                          + ", ".join(problems), where=str(path),
                          fix="the runner must bracket each timed invoke with getppid() and "
                              "nothing else may call it; report this")
    return Counts(classes=classes, windows=[row[0] for row in rows],
                  by_class=[dict(zip(classes, row[1:])) for row in rows],
                  vcpus=int(header.get("vcpus", "0")))
