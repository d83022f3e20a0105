"""The emulated aarch64 board's file system: a minimal Debian arm64 root with the
runtimes in it, fake CPU descriptions for each emulated core, and the
instruction-counting QEMU plugin.

``prepare_root()`` builds it once and caches it under
``platformdirs.user_cache_dir("edgeprune")`` (or ``$EDGEPRUNE_CACHE``), in a
folder named after a hash of everything that goes into it. It is built in a
temporary folder next to it and renamed into place when complete, so a
half-built root is never used. Layout of the folder::

    manifest.json                what went in (written last)
    root/                        Debian bookworm arm64, --variant=extract, plus the
                                 aarch64 wheels of numpy, ai-edge-litert, onnxruntime
    cpu/<core>/proc/cpuinfo      what the runtimes read to pick their kernels
    cpu/<core>/sys/devices/system/cpu/...
    plugin/libinsn_count.so      built from plugin/insn_count.c and QEMU's qemu-plugin.h

Why the fake CPU files: qemu-aarch64 7.2 does not emulate ``/proc/cpuinfo`` for
Arm guests, so the runtimes would read the host's x86 one and crash (XNNPACK's
cpuinfo library segfaults). qemu-user looks every absolute path up under its
``-L`` prefix first, so :mod:`edgeprune.devices.qemu` runs each job with a
prefix whose ``proc`` and ``sys`` are the core's and whose other top-level
folders link to ``root/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from ..errors import DeviceError
from .qemu_guest import PYTHON_VERSION, EmulatorRoot, faketime_library, guest_command, read_counts

LAYOUT_VERSION = 1
SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
# Debian packages the runner needs in the guest; apt adds their dependencies.
DEBIAN_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1",
                   "zlib1g", "libexpat1")
# aarch64 wheels unzipped into the root. A host-installed version wins (so that
# the emulated runtime is the one validated on the host); these are used otherwise.
DEFAULT_WHEELS = {"numpy": "2.4.6", "ai-edge-litert": "2.3.0", "onnxruntime": "1.32.0",
                  "flatbuffers": "25.12.19"}
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
                   "manylinux_2_28_aarch64", "manylinux_2_31_aarch64", "manylinux_2_34_aarch64",
                   "manylinux_2_35_aarch64", "manylinux_2_36_aarch64")
SITE_PACKAGES = "usr/lib/python3/dist-packages"
PLUGIN_SOURCE = Path(__file__).with_name("plugin") / "insn_count.c"
HEADER_ENV = "EDGEPRUNE_QEMU_PLUGIN_HEADER"

# tool -> Debian package that provides it
REQUIRED_TOOLS = {"qemu-aarch64": "qemu-user", "mmdebstrap": "mmdebstrap", "gcc": "gcc",
                  "apt-get": "apt", "dpkg-query": "dpkg"}


@dataclass(frozen=True)
class Core:
    """What a real board with this core reports; QEMU's model gives the same HWCAPs."""

    board: str
    part: str
    variant: str
    revision: int
    features: str
    max_khz: int
    l1i_kb: int
    l1d_kb: int
    l2_kb: int
    l2_shared: bool
    l3_kb: int = 0
    count: int = 4


_V8_FEATURES = "fp asimd aes pmull sha1 sha2 crc32 cpuid"
CORES = {
    "cortex-a53": Core("Raspberry Pi 3", "0xd03", "0x0", 4, _V8_FEATURES, 1_200_000,
                       32, 32, 512, True),
    "cortex-a72": Core("Raspberry Pi 4", "0xd08", "0x0", 3, _V8_FEATURES, 1_500_000,
                       48, 32, 1024, True),
    "cortex-a76": Core("Raspberry Pi 5", "0xd0b", "0x4", 1,
                       "fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                       "asimdrdm lrcpc dcpop asimddp", 2_400_000, 64, 64, 512, False, 2048),
}

Log = Callable[[str], None]


# --------------------------------------------------------------------------- entry point


def prepare_root(force: bool = False, log: Log = print) -> Path:
    """Build (or find in the cache) the emulated board's root; returns its folder.

    Idempotent: a second call returns the cached folder at once. ``force`` builds
    it anew and replaces the cached one. Raises DeviceError (exit 4) when a tool
    or a download is missing.
    """
    check_tools()
    spec = root_spec()
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_dir()
    final = cache / f"qemu-aarch64-{key}"
    if not force and _complete(final):
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"qemu-aarch64-{key}.lock"):
        if not force and _complete(final):  # built by another process meanwhile
            return final
        started = time.monotonic()
        build = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=cache))
        try:
            _build(build, spec, log)
            _swap_into_place(build, final)
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
        log(f"emulator root ready in {time.monotonic() - started:.0f}s: {final}")
    return final


def cache_dir() -> Path:
    env = os.environ.get("EDGEPRUNE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgeprune"))


def check_tools() -> None:
    """DeviceError naming the first missing tool and the apt package that provides it."""
    for tool, package in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None:
            raise DeviceError(f"{tool} is not installed", where="qemu device",
                              expected=f"{tool} on PATH (Debian package {package})",
                              fix=f"apt-get install {package}  (or run .ci/system-deps.sh)")
    if faketime_library() is None:
        raise DeviceError("libfaketime is not installed", where="qemu device",
                          expected="libfaketime.so.1 (Debian package libfaketime); it gives the "
                                   "emulated program a reproducible clock, so counts repeat exactly",
                          fix="apt-get install libfaketime  (or run .ci/system-deps.sh)")


def root_spec() -> dict:
    """Everything that decides what goes into the root; its hash names the cache folder."""
    return {
        "layout": LAYOUT_VERSION,
        "suite": SUITE,
        "mirror": DEBIAN_MIRROR,
        "packages": list(DEBIAN_PACKAGES),
        "python": PYTHON_VERSION,
        "wheels": wheel_pins(),
        "platforms": list(WHEEL_PLATFORMS),
        "plugin_sha256": hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest(),
        "qemu_source": qemu_source_version(),
        "cores": {name: core.__dict__ for name, core in CORES.items()},
    }


def wheel_pins() -> dict[str, str]:
    pins = {}
    for name, default in DEFAULT_WHEELS.items():
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pins[name] = default
    return pins


def qemu_source_version() -> str:
    """Debian source version of the installed qemu-user (the plugin header must match it)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${source:Version}", "qemu-user"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"could not ask dpkg for qemu-user's version: {exc}",
                          where="qemu device", fix="apt-get install qemu-user") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise DeviceError("qemu-aarch64 is not from Debian's qemu-user package",
                          where=shutil.which("qemu-aarch64") or "qemu-aarch64",
                          expected="qemu-user installed with apt (QEMU 7.2 or newer with plugins)",
                          fix=f"apt-get install qemu-user, or set {HEADER_ENV} to the "
                              "qemu-plugin.h of your QEMU")
    return out.stdout.strip()


def qemu_version() -> str:
    """``7.2.22`` from ``qemu-aarch64 --version``."""
    out = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\S+)", out.stdout)
    return match.group(1) if match else "unknown"


# --------------------------------------------------------------------------- the build


def _build(build: Path, spec: dict, log: Log) -> None:
    root = build / "root"
    _step(log, "Debian arm64 root (mmdebstrap)", lambda: _debootstrap(root, build))
    _step(log, "aarch64 wheels", lambda: _install_wheels(root, spec["wheels"], build))
    _step(log, "guest configuration", lambda: _configure_guest(root))
    for name, core in CORES.items():
        _write_cpu(build / "cpu" / name, core)
    _step(log, "instruction-counting plugin", lambda: _build_plugin(build, spec["qemu_source"]))
    _step(log, "smoke test under qemu-aarch64", lambda: _smoke_test(build))
    manifest = {**spec, "qemu_version": qemu_version(), "built_at": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.machine()}
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _step(log: Log, what: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    log(f"  {what} ...")
    action()
    log(f"  {what}: done in {time.monotonic() - started:.1f}s")


def _run(cmd: list[str], *, what: str, fix: str, timeout: float = 1800, **kwargs) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{what} took longer than {timeout:.0f}s", where=cmd[0], fix=fix) from None
    except OSError as exc:
        raise DeviceError(f"{what} could not start: {exc}", where=cmd[0], fix=fix) from None
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise DeviceError(f"{what} failed (exit {out.returncode}):\n{tail}", where=" ".join(cmd[:3]),
                          fix=fix)
    return out.stdout


def _debootstrap(root: Path, build: Path) -> None:
    _run(["mmdebstrap", "--variant=extract", "--architectures=arm64", "--quiet",
          "--include=" + ",".join(DEBIAN_PACKAGES), SUITE, str(root), DEBIAN_MIRROR],
         what="mmdebstrap (Debian arm64 root)",
         fix="check that deb.debian.org is reachable; as a user other than root mmdebstrap "
             "needs user namespaces (or run `edgeprune prepare-emulator` as root)")
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian",
                 "var/cache/apt", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)


def _install_wheels(root: Path, pins: dict[str, str], build: Path) -> None:
    wheels = build / "wheels"
    wheels.mkdir()
    for name, version in pins.items():
        try:
            _download_wheel(name, version, wheels)
        except DeviceError:
            fallback = DEFAULT_WHEELS[name]
            if version == fallback:
                raise
            # The host's version has no aarch64 wheel (a local build, say): use the pin.
            _download_wheel(name, fallback, wheels)
    site = root / SITE_PACKAGES
    site.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)
    shutil.rmtree(wheels)


def _download_wheel(name: str, version: str, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
           "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
           "-d", str(dest), f"{name}=={version}"]
    for tag in WHEEL_PLATFORMS:
        cmd[4:4] = ["--platform", tag]
    _run(cmd, what=f"pip download {name}=={version} (aarch64, cp311)",
         fix="check that PyPI is reachable and that this version has a manylinux aarch64 wheel")


def _configure_guest(root: Path) -> None:
    """Files the guest must find in the root, not on the host (qemu falls back to host paths)."""
    etc = root / "etc"
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
    (etc / "ld.so.cache").write_bytes(b"")  # invalid: the loader uses its default folders
    # Python's site folders: present (even empty) so that the host's are never listed.
    for folder in ("usr/local/lib/python3.11/dist-packages", "usr/lib/python3.11/dist-packages",
                   SITE_PACKAGES, "root"):
        (root / folder).mkdir(parents=True, exist_ok=True)


def _write_cpu(folder: Path, core: Core) -> None:
    """A fake /proc/cpuinfo and /sys/devices/system/cpu for ``core`` (as the board reports)."""
    blocks = []
    for i in range(core.count):
        blocks.append(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {core.features}\n"
                      f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {core.variant}\n"
                      f"CPU part\t: {core.part}\nCPU revision\t: {core.revision}\n")
    files = {"proc/cpuinfo": "\n".join(blocks) + "\n"}
    last = core.count - 1
    every = f"0-{last}"
    sysfs = "sys/devices/system/cpu"
    files.update({f"{sysfs}/{name}": every + "\n" for name in ("possible", "present", "online")})
    files[f"{sysfs}/kernel_max"] = "255\n"
    for i in range(core.count):
        cpu = f"{sysfs}/cpu{i}"
        files[f"{cpu}/online"] = "1\n"
        files[f"{cpu}/cpufreq/cpuinfo_max_freq"] = f"{core.max_khz}\n"
        files[f"{cpu}/cpufreq/cpuinfo_min_freq"] = f"{min(core.max_khz, 600_000)}\n"
        topo = {"physical_package_id": "0", "core_id": str(i), "cluster_id": "0",
                "core_siblings_list": every, "cluster_cpus_list": every,
                "package_cpus_list": every, "thread_siblings_list": str(i),
                "core_cpus_list": str(i)}
        for name, value in topo.items():
            files[f"{cpu}/topology/{name}"] = value + "\n"
        caches = [(1, "Data", core.l1d_kb, str(i)), (1, "Instruction", core.l1i_kb, str(i)),
                  (2, "Unified", core.l2_kb, every if core.l2_shared else str(i))]
        if core.l3_kb:
            caches.append((3, "Unified", core.l3_kb, every))
        for index, (level, kind, size_kb, shared) in enumerate(caches):
            base = f"{cpu}/cache/index{index}"
            files.update({f"{base}/level": f"{level}\n", f"{base}/type": f"{kind}\n",
                          f"{base}/size": f"{size_kb}K\n", f"{base}/shared_cpu_list": shared + "\n",
                          f"{base}/coherency_line_size": "64\n"})
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# --------------------------------------------------------------------------- the plugin


def _build_plugin(build: Path, source_version: str) -> None:
    out = build / "plugin"
    out.mkdir()
    header = _plugin_header(build / "qemu-src", source_version)
    shutil.copy2(PLUGIN_SOURCE, out / PLUGIN_SOURCE.name)
    _run(["gcc", "-O2", "-shared", "-fPIC", "-std=gnu11", "-Wall", "-Wno-unused-parameter",
          "-fvisibility=hidden", "-I", str(header.parent), "-o", str(out / "libinsn_count.so"),
          str(PLUGIN_SOURCE)],
         what="gcc (instruction-counting plugin)",
         fix="apt-get install gcc; the header comes from QEMU's source package")
    shutil.rmtree(build / "qemu-src", ignore_errors=True)


def _plugin_header(workdir: Path, source_version: str) -> Path:
    """QEMU's qemu-plugin.h from the Debian source package of the installed qemu-user."""
    override = os.environ.get(HEADER_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise DeviceError("no file here", where=f"${HEADER_ENV} = {override}",
                              expected="the qemu-plugin.h of the installed QEMU")
        return path
    workdir.mkdir(parents=True)
    tarball = _download_qemu_source(workdir, source_version)
    with tarfile.open(tarball, "r|xz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith("include/qemu/qemu-plugin.h"):
                header = workdir / "include" / "qemu-plugin.h"
                header.parent.mkdir()
                header.write_bytes(tar.extractfile(member).read())
                return header
    raise DeviceError("qemu-plugin.h is not in QEMU's source tarball", where=str(tarball),
                      fix=f"set {HEADER_ENV} to the qemu-plugin.h of your QEMU")


def _download_qemu_source(workdir: Path, source_version: str) -> Path:
    """``apt-get source --download-only qemu=VERSION`` with a private apt configuration
    that has the deb-src entries (the system's apt sources are left alone)."""
    apt = workdir / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc"):
        (apt / sub).mkdir(parents=True)
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    signed = f" [signed-by={keyring}]" if keyring.is_file() else ""
    codename = _os_codename()
    (apt / "etc" / "sources.list").write_text(
        f"deb-src{signed} {DEBIAN_MIRROR} {codename} main\n"
        f"deb-src{signed} {DEBIAN_MIRROR} {codename}-updates main\n"
        f"deb-src{signed} {DEBIAN_SECURITY} {codename}-security main\n")
    opts = ["-o", f"Dir::Etc::SourceList={apt / 'etc' / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::State::Lists={apt / 'lists'}",
            "-o", f"Dir::Cache={apt / 'cache'}", "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root", "-q"]
    fix = ("check that deb.debian.org is reachable, or set "
           f"{HEADER_ENV} to the qemu-plugin.h of your QEMU")
    _run(["apt-get", *opts, "update"], what="apt-get update (deb-src, private config)", fix=fix)
    download = workdir / "download"
    download.mkdir()
    _run(["apt-get", *opts, "source", "--download-only", f"qemu={source_version}"],
         what=f"apt-get source qemu={source_version}", fix=fix, cwd=download)
    found = sorted(download.glob("qemu_*.orig.tar.xz"))
    if not found:
        raise DeviceError("apt-get source left no qemu_*.orig.tar.xz", where=str(download), fix=fix)
    return found[0]


def _os_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return SUITE
    match = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
    return match.group(1) if match else SUITE


# --------------------------------------------------------------------------- checks, caching


def _smoke_test(build: Path) -> None:
    """Import every runtime in the guest and count one marker window (also compiles .pyc)."""
    layout = EmulatorRoot(build)
    counts = build / "smoke-counts.txt"
    # Importing what the runner imports also leaves their .pyc in the root (runs never write).
    code = ("import os, json, platform, importlib.metadata, numpy, ai_edge_litert.interpreter, "
            "onnxruntime; os.getppid(); sum(range(100)); os.getppid(); "
            "print(numpy.__version__, onnxruntime.__version__)")
    with tempfile.TemporaryDirectory(prefix="edgeprune-smoke-") as prefix:
        cmd, env = guest_command(layout, "cortex-a72", Path(prefix), counts,
                                 ["-s", "-c", code], write_bytecode=True)
        _run(cmd, env=env, what="smoke test (python3.11 importing numpy, ai-edge-litert and "
                                "onnxruntime under qemu-aarch64)", timeout=900,
             fix="run `edgeprune prepare-emulator --force`; if it fails again, report it")
    windows = read_counts(counts, expected=1).windows
    if windows[0] <= 0:
        raise DeviceError("the instruction-counting plugin recorded an empty window", where=str(counts),
                          fix="check that qemu-aarch64 accepts -plugin (QEMU 7.2 from Debian does)")
    counts.unlink()


def _complete(folder: Path) -> bool:
    return (folder / "manifest.json").is_file()


def _swap_into_place(build: Path, final: Path) -> None:
    if final.exists():
        trash = final.with_name(f".trash-{final.name}-{os.getpid()}")
        os.rename(final, trash)
        os.rename(build, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(build, final)


class _locked:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fh = open(self.path, "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()
