"""The bare-metal program that runs one model on the emulated microcontroller.

:func:`build_harness` writes, compiles and links it in a folder:

- the model sources from :mod:`edgeprune.export.firmware` (the array, its facts, a
  resolver with exactly its ops, the arena size it writes for the firmware);
- ``inputs.c``: the quantized sample inputs, in a section of their own (not counted);
- ``main.cc``: a plain ``MicroInterpreter`` on the firmware's arena runs every sample
  between two marker calls; then a second interpreter, on the same arena and with a
  profiler whose ``BeginEvent``/``EndEvent`` call two more markers, runs sample 0 once
  more, so per-op counts never perturb the plain counts; then the peak stack use is
  read back from a painted stack. Results go out through semihosting (``bkpt 0xab``);
- ``startup.c`` and ``link.ld``: vector table, data/bss set-up, FPU enabled, code at
  the board's code memory and data in its RAM.

Its flash and RAM are read from the linked ELF (section headers and the model's
symbol), leaving out the harness's own inputs and output buffers.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DeviceError
from ..export.firmware import write_c_sources
from .build import Core, Kernels, compile_flags
from .sources import SourceTree

SYMBOL = "ep_model"
STACK_BYTES = 64 << 10
HEAP_BYTES = 4 << 10
MARKERS = ("ep_mark_invoke_begin", "ep_mark_invoke_end", "ep_mark_op_begin", "ep_mark_op_end")
# Sections that hold the program's own code and constants (flash) and data (RAM).
FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.exidx", ".preinit_array", ".init_array",
                  ".fini_array")


@dataclass(frozen=True)
class Harness:
    elf: Path
    folder: Path
    markers: dict[str, int]            # name -> address (Thumb bit cleared)
    sizes: dict                        # flash and RAM, bytes
    arena_bytes: int                   # the arena the program gives TFLM
    samples: int
    repeats: int
    output_bytes: int


def quantize_inputs(inputs: np.ndarray, dtype: str, scale: float, zero: int) -> np.ndarray:
    """As the tflite-micro worker quantizes (runtimes/tflm.py), so the two runs see the
    same bytes: float32 x / scale + zero, rounded half to even, clipped."""
    x = np.asarray(inputs, dtype=np.float32)
    np_dtype = np.dtype(dtype)
    if np_dtype.kind in "iu" and scale:
        info = np.iinfo(np_dtype)
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    return x.astype(np_dtype)


def build_harness(folder: Path, tflite: Path, inputs_q: np.ndarray, arena_bytes: int,
                  tree: SourceTree, core: Core, kernels: Kernels, objects: list[Path],
                  repeats: int) -> Harness:
    folder.mkdir(parents=True, exist_ok=True)
    write_c_sources(tflite, folder, symbol=SYMBOL, arena_bytes=arena_bytes, headroom_fraction=0.0,
                    source_suffix=".cc")
    manifest = json.loads((folder / f"{SYMBOL}.manifest.json").read_text())
    arena = int(manifest["arena"]["bytes"])
    out = manifest["outputs"][0]
    output_bytes = math.prod(out["shape"] or [1]) * np.dtype(out["dtype"]).itemsize
    samples = len(inputs_q)
    (folder / "inputs.c").write_text(_inputs_c(inputs_q))
    (folder / "main.cc").write_text(_MAIN % {"samples": samples, "repeats": repeats,
                                            "input_bytes": inputs_q[0].nbytes,
                                            "output_bytes": output_bytes})
    (folder / "startup.c").write_text(_STARTUP % {"stack_paint": "0xA5A5A5A5u"})
    (folder / "link.ld").write_text(_LINKER % {
        "flash_origin": core.flash[0], "flash_length": core.flash[1],
        "ram_origin": core.ram[0], "ram_length": core.ram[1], "stack": STACK_BYTES,
        "heap": HEAP_BYTES})
    own = []
    commands = []
    for name in ("main.cc", f"{SYMBOL}.cc", "inputs.c", "startup.c"):
        src = folder / name
        cmd = compile_flags(tree, core, kernels, "harness/" + name)
        commands.append((cmd[:-1] + [f"-I{folder}", str(src), "-o", str(src.with_suffix(".o"))],
                         f"compile {name}"))
        own.append(src.with_suffix(".o"))
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: _run(*job), commands))
    elf = folder / "harness.elf"
    _run(["arm-none-eabi-gcc", *core.cflags, "-mthumb", "-nostartfiles", "--specs=nano.specs",
          "--specs=nosys.specs", "-Wl,--gc-sections", f"-Wl,-T,{folder / 'link.ld'}",
          f"-Wl,-Map,{folder / 'harness.map'}", "-o", str(elf), *map(str, own),
          "-Wl,--start-group", *map(str, objects), "-lm", "-lc", "-lgcc", "-Wl,--end-group"],
         "link the harness")
    symbols = _symbols(elf)
    missing = [m for m in MARKERS if m not in symbols]
    if missing:
        raise DeviceError(f"the linked harness lacks the marker functions {missing}", where=str(elf),
                          fix="report this as a bug: the linker's section garbage collection dropped the markers")
    markers = {m: symbols[m][0] & ~1 for m in MARKERS}
    return Harness(elf=elf, folder=folder, markers=markers,
                   sizes=_sizes(elf, symbols, arena), arena_bytes=arena, samples=samples,
                   repeats=repeats, output_bytes=output_bytes)


def _inputs_c(inputs_q: np.ndarray) -> str:
    flat = np.ascontiguousarray(inputs_q).view(np.uint8).reshape(len(inputs_q), -1)
    lines = ["/* The sample inputs, quantized as the host's TFLite Micro run quantizes them. */",
             "#include <stdint.h>",
             f"__attribute__((section(\".harness_inputs\"), aligned(16))) const uint8_t "
             f"ep_inputs[{flat.shape[0]}][{flat.shape[1]}] = {{"]
    for row in flat:
        body = ",".join(str(int(b)) for b in row)
        lines.append(f"  {{{body}}},")
    lines.append("};")
    return "\n".join(lines) + "\n"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise DeviceError(f"{what} failed:\n{tail}", where=cmd[0],
                          fix="report this with the compiler's version (arm-none-eabi-gcc --version)")


def _symbols(elf: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--defined-only", str(elf)],
                         capture_output=True, text=True, timeout=60).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            found[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
        elif len(parts) == 3:
            found[parts[2]] = (int(parts[0], 16), 0)
    return found


def _section_sizes(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                         timeout=60).stdout
    sizes = {}
    for line in out.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+(\d+)", line)
        if m:
            sizes[m.group(1)] = int(m.group(2))
    return sizes


def _sizes(elf: Path, symbols: dict[str, tuple[int, int]], arena: int) -> dict:
    sec = _section_sizes(elf)
    model = symbols[SYMBOL][1]
    flash_all = sum(sec.get(s, 0) for s in FLASH_SECTIONS) + sec.get(".data", 0)
    data = sec.get(".data", 0) + sec.get(".bss", 0) - symbols["ep_tensor_arena"][1]
    return {"model_bytes": model, "code_bytes": flash_all - model,
            "flash_bytes": flash_all, "static_data_bytes": data, "arena_bytes": arena,
            "sections": {k: v for k, v in sec.items() if not k.startswith((".debug", ".comment",
                                                                           ".ARM.attributes"))}}


_MAIN = r"""// The edgeprune measurement harness: generated, do not edit.
#include <stdint.h>
#include <string.h>
#include <new>

#include "ep_model.h"
#include "ep_model_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define SAMPLES %(samples)d
#define REPEATS %(repeats)d
#define INPUT_BYTES %(input_bytes)d
#define OUTPUT_BYTES %(output_bytes)d

extern "C" {
extern const uint8_t ep_inputs[SAMPLES][INPUT_BYTES];
void ep_mark_invoke_begin(void);
void ep_mark_invoke_end(void);
void ep_mark_op_begin(void);
void ep_mark_op_end(void);
void ep_puts(const char* s);
void ep_put_hex(const uint8_t* data, uint32_t n);
void ep_put_uint(const char* key, uint32_t value);
uint32_t ep_stack_used(void);
}

extern "C" { alignas(16) uint8_t ep_tensor_arena[EP_MODEL_ARENA_BYTES]; }
#define tensor_arena ep_tensor_arena
alignas(16) static uint8_t interpreter_storage[sizeof(tflite::MicroInterpreter)];

namespace {
class MarkerProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char*) override { ep_mark_op_begin(); return 0; }
  void EndEvent(uint32_t) override { ep_mark_op_end(); }
};
MarkerProfiler profiler;
ep_model_OpResolver resolver;

int run_once(tflite::MicroInterpreter* interpreter, int sample) {
  TfLiteTensor* in = interpreter->input(0);
  if (in->bytes != INPUT_BYTES) return 5;
  memcpy(in->data.raw, ep_inputs[sample], INPUT_BYTES);
  ep_mark_invoke_begin();
  TfLiteStatus status = interpreter->Invoke();
  ep_mark_invoke_end();
  return status == kTfLiteOk ? 0 : 6;
}
}  // namespace

int main(void) {
  const tflite::Model* model = tflite::GetModel(ep_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) { ep_puts("error schema\n"); return 2; }
  if (ep_model_register_ops(resolver) != kTfLiteOk) { ep_puts("error resolver\n"); return 2; }

  tflite::MicroInterpreter* plain = new (interpreter_storage) tflite::MicroInterpreter(
      model, resolver, tensor_arena, EP_MODEL_ARENA_BYTES);
  if (plain->AllocateTensors() != kTfLiteOk) { ep_puts("error allocate\n"); return 3; }
  ep_put_uint("arena_used", (uint32_t)plain->arena_used_bytes());
  if (plain->output(0)->bytes != OUTPUT_BYTES) { ep_puts("error output size\n"); return 5; }
  for (int i = 0; i < SAMPLES; ++i) {
    int rc = run_once(plain, i);
    if (rc) { ep_put_uint("error invoke", (uint32_t)i); return rc; }
    ep_puts("output ");
    ep_put_hex(plain->output(0)->data.uint8, OUTPUT_BYTES);
  }
  for (int r = 0; r < REPEATS; ++r) {
    int rc = run_once(plain, 0);
    if (rc) { ep_put_uint("error invoke", 0); return rc; }
  }
  plain->~MicroInterpreter();

  tflite::MicroInterpreter* profiled = new (interpreter_storage) tflite::MicroInterpreter(
      model, resolver, tensor_arena, EP_MODEL_ARENA_BYTES, nullptr, &profiler);
  if (profiled->AllocateTensors() != kTfLiteOk) { ep_puts("error allocate\n"); return 3; }
  int rc = run_once(profiled, 0);
  if (rc) { ep_put_uint("error invoke", 0); return rc; }
  ep_puts("profiled ");
  ep_put_hex(profiled->output(0)->data.uint8, OUTPUT_BYTES);
  ep_put_uint("stack_used", ep_stack_used());
  ep_puts("done\n");
  return 0;
}

// TFLM's C++ needs these from a C++ runtime; a firmware has them from its own.
void operator delete(void*) noexcept {}
void operator delete(void*, size_t) noexcept {}
extern "C" void __cxa_pure_virtual(void) { ep_puts("error pure virtual\n"); while (1) {} }
"""

_STARTUP = r"""/* Startup, semihosting and markers for the edgeprune harness: generated, do not edit. */
#include <stdint.h>
#include <string.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern uint32_t __stack_limit, __stack_top;
extern void __libc_init_array(void);
extern int main(void);

/* The markers: empty and never inlined; the counting plugin watches their addresses. */
#define MARKER(name) __attribute__((noinline, used)) void name(void) { __asm__ volatile(""); }
MARKER(ep_mark_invoke_begin)
MARKER(ep_mark_invoke_end)
MARKER(ep_mark_op_begin)
MARKER(ep_mark_op_end)

static int semihost(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void ep_puts(const char* s) { semihost(0x04, s); }   /* SYS_WRITE0 */

void ep_put_hex(const uint8_t* data, uint32_t n) {
  static const char digits[] = "0123456789abcdef";
  char buf[129];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; ++i) {
    buf[k++] = digits[data[i] >> 4];
    buf[k++] = digits[data[i] & 15];
    if (k == 128 || i + 1 == n) { buf[k] = 0; ep_puts(buf); k = 0; }
  }
  ep_puts("\n");
}

void ep_put_uint(const char* key, uint32_t value) {
  char buf[16];
  int k = 15;
  buf[k] = 0;
  do { buf[--k] = (char)('0' + value %% 10); value /= 10; } while (value && k > 0);
  ep_puts(key);
  ep_puts(" ");
  ep_puts(&buf[k]);
  ep_puts("\n");
}

uint32_t ep_stack_used(void) {
  uint32_t* p = &__stack_limit;
  while (p < &__stack_top && *p == %(stack_paint)s) ++p;
  return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

static void ep_exit(int code) {
  uint32_t block[2] = {0x20026u, (uint32_t)code};   /* ADP_Stopped_ApplicationExit */
  semihost(0x20, block);                             /* SYS_EXIT_EXTENDED */
  for (;;) {}
}

void Reset_Handler(void) {
  memcpy(&__data_start, &__data_load, (size_t)((char*)&__data_end - (char*)&__data_start));
  memset(&__bss_start, 0, (size_t)((char*)&__bss_end - (char*)&__bss_start));
#if defined(__ARM_FP)
  *(volatile uint32_t*)0xE000ED88u |= (0xFu << 20);  /* CPACR: CP10, CP11 full access */
  __asm__ volatile("dsb\n isb");
#endif
  /* Paint the stack below the current frame, to read the peak use back at the end. */
  uint32_t here;
  for (uint32_t* p = &__stack_limit; p < &here - 64; ++p) *p = %(stack_paint)s;
  __libc_init_array();
  int rc = main();
  ep_put_uint("exit", (uint32_t)rc);
  ep_exit(rc);
}

void Fault_Handler(void) {
  ep_put_uint("error fault cfsr", *(volatile uint32_t*)0xE000ED28u);
  ep_exit(99);
}

void _init(void) {}
void _fini(void) {}
/* Static destructors never run on a firmware that never exits: register none. */
void* __dso_handle = 0;
int __aeabi_atexit(void* object, void (*destructor)(void*), void* dso) { return 0; }

__attribute__((section(".vectors"), used)) const void* const ep_vectors[16] = {
  &__stack_top, (void*)Reset_Handler, (void*)Fault_Handler, (void*)Fault_Handler,
  (void*)Fault_Handler, (void*)Fault_Handler, (void*)Fault_Handler, 0, 0, 0, 0,
  (void*)Fault_Handler, (void*)Fault_Handler, 0, (void*)Fault_Handler, (void*)Fault_Handler,
};
"""

_LINKER = r"""/* edgeprune harness: code and constants in the board's code memory, data in RAM. */
MEMORY
{
  FLASH (rx) : ORIGIN = %(flash_origin)#x, LENGTH = %(flash_length)#x
  RAM (rwx)  : ORIGIN = %(ram_origin)#x, LENGTH = %(ram_length)#x
}
ENTRY(Reset_Handler)
SECTIONS
{
  .vectors : { KEEP(*(.vectors)) } > FLASH
  .text : { *(.text*) KEEP(*(.init)) KEEP(*(.fini)) } > FLASH
  .rodata : { *(.rodata*) } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  .preinit_array : { __preinit_array_start = .; KEEP(*(.preinit_array*)) __preinit_array_end = .; } > FLASH
  .init_array : { __init_array_start = .; KEEP(*(SORT(.init_array.*))) KEEP(*(.init_array*)) __init_array_end = .; } > FLASH
  .fini_array : { __fini_array_start = .; KEEP(*(.fini_array*)) __fini_array_end = .; } > FLASH
  .harness_inputs : { KEEP(*(.harness_inputs*)) } > FLASH
  .data : ALIGN(4) { __data_start = .; *(.data*) . = ALIGN(4); __data_end = .; } > RAM AT > FLASH
  __data_load = LOADADDR(.data);
  .bss (NOLOAD) : ALIGN(16) { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  .heap (NOLOAD) : ALIGN(8) { end = .; . += %(heap)d; } > RAM
  .stack (NOLOAD) : ALIGN(8) { __stack_limit = .; . += %(stack)d; __stack_top = .; } > RAM
}
"""
