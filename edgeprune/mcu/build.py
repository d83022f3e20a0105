"""TFLite Micro compiled for one Cortex-M core: only what a model needs, cached per object.

The whole library (every kernel) takes about 9 minutes on 2 cores; a model needs the
framework (interpreter, allocator, flatbuffer parsing: about 40 files) and the kernels
of its ops. So :func:`library_objects` compiles exactly those, each object cached under
``EDGEPRUNE_CACHE/mcu-obj-<key>/`` where ``key`` hashes the checked sources, the core's
flags, the kernel set and the compiler's version: a second model, or a second run,
compiles only what no earlier one did. Flags are those of TFLM's ``cortex_m_generic``
target with GCC (``-Os`` for the framework, ``-O2`` for kernels and CMSIS-NN).

Which file registers an op is read from the sources themselves:
``micro_mutable_op_resolver.h`` maps ``AddConv2D`` to ``Register_CONV_2D()``, and the
kernel file that defines ``Register_CONV_2D`` is found by its text, preferring
``kernels/cmsis_nn/`` for the CMSIS-NN kernel set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

from ..errors import DeviceError, UnsupportedError
from .cache import cache_root, locked
from .sources import SourceTree

LAYOUT_VERSION = 1
Kernels = Literal["cmsis-nn", "reference"]
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar", "arm-none-eabi-nm",
         "arm-none-eabi-objcopy")
APT_TOOLCHAIN = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev"


@dataclass(frozen=True)
class Core:
    """A Cortex-M core: its compiler flags and the QEMU board that emulates it."""

    name: str
    cflags: tuple[str, ...]
    machine: str                       # qemu-system-arm -M
    flash: tuple[int, int]             # origin, length of the code memory
    ram: tuple[int, int]               # origin, length of the data memory
    board: str                         # what the QEMU board is, in words


MIB = 1 << 20
CORES = {
    "cortex-m4": Core("cortex-m4", ("-mcpu=cortex-m4", "-mfpu=auto", "-mfloat-abi=hard",
                                    "-DCPU_M4=1"),
                      "mps2-an386", (0x0, 4 * MIB), (0x20000000, 4 * MIB),
                      "MPS2 AN386 (Cortex-M4 with FPU)"),
    "cortex-m7": Core("cortex-m7", ("-mcpu=cortex-m7", "-mfpu=auto", "-mfloat-abi=hard",
                                    "-DCPU_M7=1"),
                      "mps2-an500", (0x0, 4 * MIB), (0x20000000, 4 * MIB),
                      "MPS2 AN500 (Cortex-M7 with FPU)"),
    "cortex-m55": Core("cortex-m55", ("-mcpu=cortex-m55", "-mfloat-abi=hard", "-DCPU_M55=1"),
                       "mps3-an547", (0x0, 512 << 10), (0x20000000, 512 << 10),
                       "MPS3 AN547 (Cortex-M55 with Helium MVE)"),
}

COMMON_FLAGS = ("-mthumb", "-mlittle-endian", "-fsigned-char", "-fomit-frame-pointer",
                "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections",
                "-fdata-sections", "-fmessage-length=0", "-DTF_LITE_STATIC_MEMORY",
                "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_MCU_DEBUG_LOG",
                "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0")
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_FLAGS = ("-std=c11",)
INCLUDE_DIRS = (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                "third_party/cmsis_nn", "third_party/cmsis_nn/Include",
                "third_party/cmsis/CMSIS/Core/Include")

MICRO = "tensorflow/lite/micro"
# The framework: every .cc in these folders, less the test helpers and the timer and
# profiler that need a device header (the harness brings its own profiler).
FRAMEWORK_DIRS = (MICRO, f"{MICRO}/arena_allocator", f"{MICRO}/memory_planner",
                  f"{MICRO}/tflite_bridge", f"{MICRO}/cortex_m_generic")
FRAMEWORK_SKIP = re.compile(r"(test_helper|fake_micro_context|mock_micro_graph|recording_|"
                            r"micro_time|micro_profiler|hexdump)")
FRAMEWORK_FILES = (
    "tensorflow/lite/core/api/flatbuffer_conversions.cc", "tensorflow/lite/core/api/tensor_utils.cc",
    "tensorflow/lite/core/c/common.cc", "tensorflow/lite/kernels/kernel_util.cc",
    "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/runtime_shape.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/kernels/internal/tensor_utils.cc",
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
    f"{MICRO}/kernels/kernel_util.cc",
)
# Kernel files that others call into, beyond the "<name>_common.cc" sibling.
KERNEL_DEPS = {
    "unidirectional_sequence_lstm": ("lstm_eval.cc", "lstm_eval_common.cc", "micro_tensor_utils.cc"),
    "svdf": ("micro_tensor_utils.cc",),
}
# CMSIS-NN source folders each CMSIS-NN kernel file calls into.
CMSIS_FOLDERS = {
    "conv": ("ConvolutionFunctions",), "depthwise_conv": ("ConvolutionFunctions",),
    "transpose_conv": ("ConvolutionFunctions",),
    # CMSIS-NN's fully-connected kernel calls arm_convolve_1x1_s8_fast for some batch sizes
    "fully_connected": ("FullyConnectedFunctions", "ConvolutionFunctions"),
    "batch_matmul": ("FullyConnectedFunctions", "ConvolutionFunctions"), "pooling": ("PoolingFunctions",),
    "softmax": ("SoftmaxFunctions",), "add": ("BasicMathFunctions",),
    "mul": ("BasicMathFunctions",), "maximum_minimum": ("BasicMathFunctions",),
    "pad": ("PadFunctions",), "transpose": ("TransposeFunctions",), "svdf": ("SVDFunctions",),
    "unidirectional_sequence_lstm": ("LSTMFunctions", "ActivationFunctions"),
}


# --------------------------------------------------------------------------- toolchain


def check_toolchain() -> str:
    """The cross compiler's version line; DeviceError (exit 4) naming the apt command."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            raise DeviceError(f"{tool} is not installed", where="microcontroller build",
                              expected="the GNU Arm embedded toolchain (Debian gcc-arm-none-eabi)",
                              fix=f"{APT_TOOLCHAIN}  (or run .ci/system-deps.sh)")
    probe = subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-x", "c++",
                            "-fsyntax-only", "-"], input="#include <algorithm>\n#include <cmath>\n",
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise DeviceError("the Arm C++ standard headers are not installed",
                          where="arm-none-eabi-g++", expected="<algorithm> and <cmath> for "
                          "arm-none-eabi (Debian libstdc++-arm-none-eabi-dev)",
                          fix=f"{APT_TOOLCHAIN}  (or run .ci/system-deps.sh)")
    return compiler_version()


@lru_cache(maxsize=1)
def compiler_version() -> str:
    out = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True,
                         timeout=60)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def core_spec(name: str, fpu: bool = True) -> Core:
    """The core; ``fpu=False`` builds for the same core without its FPU (soft float)."""
    if name not in CORES:
        raise UnsupportedError(f"no emulated board for core {name!r}", where="device.core",
                               expected=", ".join(CORES))
    core = CORES[name]
    if fpu:
        return core
    flags = tuple(f"{f}+nofp" if f.startswith("-mcpu=") else "-mfloat-abi=soft"
                  if f.startswith("-mfloat-abi") else f for f in core.cflags if f != "-mfpu=auto")
    return replace(core, cflags=flags)


# --------------------------------------------------------------------------- which files


@lru_cache(maxsize=8)
def _resolver_registrations(root: Path) -> dict[str, str]:
    """Resolver method -> registration function, e.g. AddConv2D -> CONV_2D."""
    text = (root / MICRO / "micro_mutable_op_resolver.h").read_text()
    pairs = re.findall(r"TfLiteStatus\s+(Add\w+)\s*\([^)]*?Register_(\w+)\(\)", text, re.S)
    return dict(pairs)


@lru_cache(maxsize=8)
def _registration_files(root: Path) -> dict[tuple[str, str], str]:
    """(registration, folder) -> kernel file defining it; folder "cmsis_nn" or ""."""
    found: dict[tuple[str, str], str] = {}
    kernels = root / MICRO / "kernels"
    for folder in ("", "cmsis_nn"):
        for path in sorted((kernels / folder).glob("*.cc")):
            for name in re.findall(r"TFLMRegistration\s*\*?\s*Register_(\w+)\s*\(\s*\)\s*\{",
                                   path.read_text(errors="replace")):
                found.setdefault((name, folder), path.relative_to(root).as_posix())
    return found


def kernel_files(tree: SourceTree, methods: list[str], kernels: Kernels) -> list[str]:
    """The kernel sources (tree-relative) that register the resolver ``methods``."""
    root = tree.root
    regs = _resolver_registrations(root)
    files = _registration_files(root)
    lock_files = _lock_paths()
    out: list[str] = []
    for method in methods:
        reg = regs.get(method)
        if reg is None:
            raise UnsupportedError(f"{method} has no default registration in TFLM's resolver",
                                   where=f"{MICRO}/micro_mutable_op_resolver.h")
        path = files.get((reg, "cmsis_nn")) if kernels == "cmsis-nn" else None
        path = path or files.get((reg, ""))
        if path is None and kernels == "reference" and (reg, "cmsis_nn") in files:
            wanted = files[(reg, "cmsis_nn")].replace("/cmsis_nn/", "/")
            raise DeviceError(
                f"the reference kernel for {reg} ({wanted}) is not in the TFLM sources "
                f"({tree.origin})", where=wanted,
                fix="see the sources' error for the fix; the mirror has only the CMSIS-NN kernels")
        if path is None:
            raise UnsupportedError(f"no TFLM kernel file defines Register_{reg}", where=method)
        out.append(path)
        stem = Path(path).stem
        base = f"{MICRO}/kernels"
        for dep in (f"{stem}_common.cc", *KERNEL_DEPS.get(stem, ())):
            if f"{base}/{dep}" in lock_files:
                out.append(f"{base}/{dep}")
        if kernels == "cmsis-nn" and "/cmsis_nn/" in path:
            for folder in CMSIS_FOLDERS.get(stem, ()):
                out += sorted(p for p in lock_files
                              if p.startswith(f"third_party/cmsis_nn/Source/{folder}/")
                              and p.endswith(".c"))
    if kernels == "cmsis-nn":
        out += sorted(p for p in lock_files if p.startswith(
            "third_party/cmsis_nn/Source/NNSupportFunctions/") and p.endswith(".c"))
    return list(dict.fromkeys(out))


def framework_files() -> list[str]:
    files = [p for p in _lock_paths() if p.endswith(".cc") and "/" in p
             and p.rsplit("/", 1)[0] in FRAMEWORK_DIRS and not FRAMEWORK_SKIP.search(p)]
    return sorted(files) + list(FRAMEWORK_FILES)


@lru_cache(maxsize=1)
def _lock_paths() -> frozenset[str]:
    from .sources import load_lock

    return frozenset(load_lock()["files"])


# --------------------------------------------------------------------------- compiling


def build_key(tree: SourceTree, core: Core, kernels: Kernels) -> str:
    spec = {"layout": LAYOUT_VERSION, "sources": tree.digest, "core": list(core.cflags),
            "common": list(COMMON_FLAGS), "cxx": list(CXX_FLAGS), "c": list(C_FLAGS),
            "kernels": kernels, "compiler": compiler_version()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def compile_flags(tree: SourceTree, core: Core, kernels: Kernels, rel: str) -> list[str]:
    """The full command line, less the output, for one source file."""
    cxx = rel.endswith(".cc")
    kernel = "/kernels/" in rel and "/kernels/internal/" not in rel or rel.startswith("third_party/")
    opt = "-O2" if kernel else "-Os"
    defines = ["-DCMSIS_NN"] if kernels == "cmsis-nn" else []
    includes = [f"-I{tree.root / d}" for d in INCLUDE_DIRS]
    tool = "arm-none-eabi-g++" if cxx else "arm-none-eabi-gcc"
    return [tool, *core.cflags, *COMMON_FLAGS, *(CXX_FLAGS if cxx else C_FLAGS), opt, *defines,
            *includes, "-c", str(tree.root / rel)]


def library_objects(tree: SourceTree, core: Core, kernels: Kernels, methods: list[str],
                    log=lambda msg: None) -> tuple[list[Path], dict]:
    """Compile (or find cached) the framework and the kernels of ``methods``.

    Returns the object files and facts about the build (its key, how many objects were
    compiled now, and how long that took).
    """
    import time

    check_toolchain()
    sources = framework_files() + kernel_files(tree, methods, kernels)
    folder = cache_root() / f"mcu-obj-{build_key(tree, core, kernels)}"
    objects = [folder / (rel + ".o") for rel in sources]
    todo = [(rel, obj) for rel, obj in zip(sources, objects) if not obj.is_file()]
    started = time.monotonic()
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder.with_name(folder.name + ".lock")):
            todo = [(rel, obj) for rel, obj in todo if not obj.is_file()]
            log(f"compiling {len(todo)} TFLM files for {core.name} ({kernels}) ...")
            _compile_all(tree, core, kernels, todo)
            (folder / "build.json").write_text(json.dumps(
                {"core": core.name, "kernels": kernels, "compiler": compiler_version(),
                 "sources": tree.digest, "flags": list(core.cflags + COMMON_FLAGS)}, indent=2))
    facts = {"key": folder.name, "objects": len(objects), "compiled_now": len(todo),
             "compile_s": round(time.monotonic() - started, 2), "compiler": compiler_version()}
    return objects, facts


def _compile_all(tree: SourceTree, core: Core, kernels: Kernels, todo: list[tuple[str, Path]]) -> None:
    def one(item: tuple[str, Path]) -> str | None:
        rel, obj = item
        obj.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".o", dir=obj.parent)
        os.close(fd)
        cmd = compile_flags(tree, core, kernels, rel) + ["-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            os.unlink(tmp)
            return f"{rel}:\n" + "\n".join(proc.stderr.strip().splitlines()[-12:])
        os.replace(tmp, obj)
        return None

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        errors = [e for e in pool.map(one, todo) if e]
    if errors:
        raise DeviceError(f"{len(errors)} TFLM files did not compile; the first: {errors[0]}",
                          where="arm-none-eabi-gcc",
                          fix="report this with the compiler's version (arm-none-eabi-gcc --version)")
