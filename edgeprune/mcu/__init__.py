"""Microcontroller cost on the real kernels: TensorFlow Lite Micro with CMSIS-NN (or
TFLM's reference kernels) compiled for the profile's Cortex-M core, run bare-metal
under ``qemu-system-arm``, instructions counted exactly by a TCG plugin.

- :mod:`.sources`  the pinned TFLM / CMSIS-NN sources: a local mirror or the upstream
  archives, every file checked against ``tflm_sources.json``
- :mod:`.build`    the cross toolchain, and the library objects compiled per core and
  kernel set, cached per object file
- :mod:`.harness`  the generated bare-metal program (model, resolver, arena, markers),
  linked, with its flash and RAM read from the ELF
- :mod:`.run`      ``qemu-system-arm`` with the counting plugin; outputs and counts
- :mod:`.cost`     the per-core calibration (cycles per instruction from published
  figures) and the latency estimate with its error band
- :mod:`.measure`  the whole measurement for one model, as report figures
"""
