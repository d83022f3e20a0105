"""Run the harness under ``qemu-system-arm`` with the counting plugin, and read back
what it printed (outputs, arena and stack use) and what the plugin counted.

The plugin (``devices/plugin/mcu_count.c``) is compiled once per QEMU version against
that QEMU's ``qemu-plugin.h``, obtained as for the emulated boards
(:func:`edgeprune.devices.qemu_root._plugin_header`: ``$EDGEPRUNE_QEMU_PLUGIN_HEADER``,
else Debian's source package of the installed QEMU), and cached.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..devices.qemu_root import HEADER_ENV, _plugin_header
from ..errors import DeviceError
from .build import Core
from .cache import cache_root, locked, swap_into_place
from .harness import MARKERS, Harness

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "devices" / "plugin" / "mcu_count.c"
CLASSES = ("load_store", "mac", "branch", "other")
APT_QEMU = "apt-get install qemu-system-arm"


@dataclass
class Window:
    """Instructions between two markers, in total and per class."""

    total: int
    by_class: dict[str, int]


@dataclass
class McuRun:
    outputs: list[bytes]                  # raw output tensor bytes, one per sample
    profiled_output: bytes
    invokes: list[Window]                 # samples, then repeats of sample 0
    profiled_invoke: Window
    ops: list[Window]                     # per op, in execution order (profiled run)
    arena_used: int
    stack_used: int
    seconds: float
    log: list[str] = field(default_factory=list)


def check_emulator() -> str:
    if shutil.which("qemu-system-arm") is None:
        raise DeviceError("qemu-system-arm is not installed", where="microcontroller emulation",
                          expected="qemu-system-arm 7.2 or newer (Debian package qemu-system-arm)",
                          fix=f"{APT_QEMU}  (or run .ci/system-deps.sh)")
    if shutil.which("gcc") is None:
        raise DeviceError("gcc is not installed", where="the instruction-counting plugin",
                          expected="gcc, to compile the QEMU plugin", fix="apt-get install gcc")
    out = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()[0].strip() if out.stdout else "qemu-system-arm"


def qemu_source_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${source:Version}", "qemu-system-arm"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is None or out.returncode != 0 or not out.stdout.strip():
        import os

        if os.environ.get(HEADER_ENV):
            return "custom-" + hashlib.sha256(Path(os.environ[HEADER_ENV]).read_bytes()).hexdigest()[:12]
        raise DeviceError("qemu-system-arm is not from Debian's package",
                          where=shutil.which("qemu-system-arm") or "qemu-system-arm",
                          expected="qemu-system-arm installed with apt (QEMU 7.2 or newer)",
                          fix=f"{APT_QEMU}, or set {HEADER_ENV} to the qemu-plugin.h of your QEMU")
    return out.stdout.strip()


def plugin_path(log=lambda msg: None) -> Path:
    """The compiled counting plugin for the installed qemu-system-arm (built once)."""
    version = qemu_source_version()
    key = hashlib.sha256(PLUGIN_SOURCE.read_bytes() + version.encode()).hexdigest()[:16]
    final = cache_root() / f"mcu-plugin-{key}"
    lib = final / "libmcu_count.so"
    if lib.is_file():
        return lib
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(final.with_name(final.name + ".lock")):
        if lib.is_file():
            return lib
        log(f"building the instruction-counting plugin for QEMU {version}")
        build = Path(tempfile.mkdtemp(prefix=f".build-{final.name}-", dir=final.parent))
        try:
            header = _plugin_header(build / "qemu-src", version)
            proc = subprocess.run(
                ["gcc", "-O2", "-shared", "-fPIC", "-std=gnu11", "-Wall", "-Wno-unused-parameter",
                 "-fvisibility=hidden", "-I", str(header.parent), "-o",
                 str(build / "libmcu_count.so"), str(PLUGIN_SOURCE)],
                capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise DeviceError(f"gcc could not build the counting plugin:\n{proc.stderr[-800:]}",
                                  where=str(PLUGIN_SOURCE),
                                  fix=f"set {HEADER_ENV} to the qemu-plugin.h of your QEMU")
            shutil.rmtree(build / "qemu-src", ignore_errors=True)
            swap_into_place(build, final)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return lib


def run_harness(harness: Harness, core: Core, timeout_s: float = 600) -> McuRun:
    plugin = plugin_path()
    with tempfile.TemporaryDirectory(prefix="edgeprune-mcu-") as tmp:
        counts = Path(tmp) / "counts.txt"
        marks = ",".join(f"mark={harness.markers[m]:#x}" for m in MARKERS)
        cmd = ["qemu-system-arm", "-M", core.machine, "-nographic", "-monitor", "none",
               "-serial", "none", "-semihosting-config", "enable=on,target=native",
               "-kernel", str(harness.elf), "-plugin", f"{plugin},out={counts},{marks}"]
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"the emulated {core.name} did not finish in {timeout_s:.0f} s",
                              where=" ".join(cmd[:3]),
                              fix="a model this large needs a larger timeout; report it") from None
        seconds = time.monotonic() - started
        # QEMU writes the guest's semihosting console to its stderr
        lines = [ln.strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error")]
        if proc.returncode != 0 or errors or "done" not in lines:
            raise DeviceError(
                f"the harness failed on the emulated {core.name} (exit {proc.returncode}): "
                f"{'; '.join(errors) or (proc.stderr.strip()[-400:] or 'no output')}",
                where=str(harness.elf), fix=_fix_for(errors))
        events = _read_events(counts)
    return _parse(lines, events, harness, seconds)


def _fix_for(errors: list[str]) -> str:
    if any("allocate" in e for e in errors):
        return ("the firmware's arena (host-measured minimum + headroom) is too small for these "
                "kernels on this core: raise the target's firmware.arena_headroom_fraction")
    return "report this with the model; check the model runs with tflite_micro on the host"


def _read_events(path: Path) -> list[tuple[int, int, list[int]]]:
    if not path.is_file():
        raise DeviceError("the counting plugin wrote nothing", where=str(path),
                          fix="check that qemu-system-arm accepts -plugin (Debian's QEMU 7.2 does)")
    rows = path.read_text().splitlines()
    if not rows or rows[0] != "edgeprune-mcu-count 1" or not rows[-1].startswith("end "):
        raise DeviceError("the counting plugin's file is incomplete", where=str(path),
                          fix="report this")
    events = []
    for row in rows[2:-1]:
        if row.startswith("error"):
            raise DeviceError(f"the counting plugin failed: {row}", where=str(path), fix="report this")
        nums = [int(v) for v in row.split()]
        events.append((nums[0], nums[1], nums[2:]))
    return events


def _window(a: tuple[int, int, list[int]], b: tuple[int, int, list[int]]) -> Window:
    return Window(b[1] - a[1], {c: y - x for c, x, y in zip(CLASSES, a[2], b[2])})


def _parse(lines: list[str], events, harness: Harness, seconds: float) -> McuRun:
    begin, end, op_begin, op_end = range(4)
    invokes, ops, profiled = [], [], None
    stack: list = []
    for ev in events:
        kind = ev[0]
        if kind in (begin, op_begin):
            stack.append(ev)
            continue
        opened = stack.pop() if stack else None
        if opened is None or opened[0] != (begin if kind == end else op_begin):
            raise DeviceError("the markers are not nested as the harness places them",
                              where=str(harness.elf), fix="report this")
        if kind == end:
            window = _window(opened, ev)
            if ops and profiled is None:
                profiled = window
            else:
                invokes.append(window)
        else:
            ops.append(_window(opened, ev))
    expected = harness.samples + harness.repeats
    if len(invokes) != expected or profiled is None:
        raise DeviceError(f"expected {expected} plain and 1 profiled invoke windows, got "
                          f"{len(invokes)} and {int(profiled is not None)}",
                          where=str(harness.elf), fix="report this")
    outputs = [bytes.fromhex(ln.split()[1]) for ln in lines if ln.startswith("output ")]
    profiled_out = next(bytes.fromhex(ln.split()[1]) for ln in lines if ln.startswith("profiled "))
    values = {ln.split()[0]: int(ln.split()[1]) for ln in lines
              if ln.split()[0] in ("arena_used", "stack_used")}
    return McuRun(outputs=outputs, profiled_output=profiled_out, invokes=invokes,
                  profiled_invoke=profiled, ops=ops, arena_used=values["arena_used"],
                  stack_used=values["stack_used"], seconds=seconds, log=lines)
