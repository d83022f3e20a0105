"""Microcontroller cost on the real kernels: instructions, latency estimate, flash, RAM.

    python benchmarks/mcu.py                      # digits, DS-CNN and ResNet-8 on M4 and M7
    python benchmarks/mcu.py --kernels both       # also TFLM's reference kernels (needs them:
                                                  # the upstream sources, not the offline mirror)
    python benchmarks/mcu.py --cold               # a fresh cache: the first-build wall time
    python benchmarks/mcu.py --fit                # recount the calibration models, refit the
                                                  # CPI, rewrite targets/calibration/mcu-*.toml

The models are built here with the shapes of MLPerf Tiny's reference models (DS-CNN for
keyword spotting, ResNet-8 for CIFAR-10, MobileNetV1 0.25 for visual wake words, the FC
autoencoder for anomaly detection) and random weights: the CMSIS-NN kernels' instruction
counts do not depend on the weight values. Each is quantized to full int8 with int8 I/O.
Every run goes through the ``tflm`` device, as ``edgeprune export`` does. Needs the Arm
toolchain and qemu-system-arm (.ci/system-deps.sh) and the TFLM sources
($EDGEPRUNE_TFLM_SOURCES, or internet).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeprune import keras_env  # noqa: E402
from edgeprune.devices.base import RunRequest  # noqa: E402
from edgeprune.errors import EdgepruneError  # noqa: E402
from edgeprune.export.tflite import to_tflite  # noqa: E402
from edgeprune.mcu.cost import calibration_path  # noqa: E402
from edgeprune.runtimes.tflm import TflmDevice  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402


# --------------------------------------------------------------------------- the models


def _bn_relu(layers, x):
    return layers.ReLU()(layers.BatchNormalization()(x))


def ds_cnn(keras):
    """MLPerf Tiny's keyword-spotting DS-CNN: 49x10 MFCC -> 12 classes."""
    layers = keras.layers
    inp = keras.Input((49, 10, 1))
    x = _bn_relu(layers, layers.Conv2D(64, (10, 4), strides=2, padding="same")(inp))
    for _ in range(4):
        x = _bn_relu(layers, layers.DepthwiseConv2D(3, padding="same")(x))
        x = _bn_relu(layers, layers.Conv2D(64, 1, padding="same")(x))
    x = layers.AveragePooling2D((25, 5))(x)
    out = layers.Dense(12, activation="softmax")(layers.Flatten()(x))
    return keras.Model(inp, out, name="ds_cnn")


def resnet8(keras):
    """MLPerf Tiny's image-classification ResNet-8: 32x32x3 CIFAR-10 -> 10 classes (the same
    graph as benchmarks/zoo.py's)."""
    import zoo

    return zoo.build("resnet8", keras)


def mobilenet_025(keras):
    """MLPerf Tiny's visual-wake-words MobileNetV1 0.25: 96x96x3 -> 2 classes. Built here:
    keras.applications' MobileNet head (a MEAN with keepdims, then a 1x1 conv as the
    classifier) makes tflite-micro's host interpreter abort (SIGABRT) at this commit."""
    layers = keras.layers
    inp = keras.Input((96, 96, 3))
    x = _bn_relu(layers, layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp))
    for filters, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1),
                            (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)):
        x = _bn_relu(layers, layers.DepthwiseConv2D(3, strides=stride, padding="same",
                                                    use_bias=False)(x))
        x = _bn_relu(layers, layers.Conv2D(filters, 1, use_bias=False)(x))
    x = layers.AveragePooling2D(3)(x)
    out = layers.Dense(2, activation="softmax")(layers.Flatten()(x))
    return keras.Model(inp, out, name="mobilenet_v1_025")


def fc_autoencoder(keras):
    """MLPerf Tiny's anomaly-detection FC autoencoder: 640 -> 128x4 -> 8 -> 128x4 -> 640."""
    layers = keras.layers
    inp = keras.Input((640,))
    x = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = _bn_relu(layers, layers.Dense(units)(x))
    return keras.Model(inp, layers.Dense(640)(x), name="fc_autoencoder")


def digits(keras):
    """The bundled reference model (models/digits), trained and cached as `export` does."""
    from edgeprune import reference

    return reference.load_model("digits", seed=0, epochs=None, log=lambda m: None).model


MODELS = {"digits": digits, "kws": ds_cnn, "ic": resnet8, "vww": mobilenet_025, "ad": fc_autoencoder}


def int8_tflite(name: str, folder: Path) -> Path:
    """The model, full int8 with int8 I/O, as `export` converts it (random calibration data)."""
    keras = keras_env.keras()
    keras.utils.set_random_seed(0)
    model = MODELS[name](keras)
    shape = tuple(model.inputs[0].shape[1:])
    rep = np.random.default_rng(0).random((32, *shape), dtype=np.float32)
    path = folder / f"{name}.tflite"
    path.write_bytes(to_tflite(model, "int8", representative=rep, int8_io=True))
    return path


# --------------------------------------------------------------------------- measuring


def measure(path: Path, core: str, kernels: str, samples: int = 2) -> dict:
    """One model on one core through the tflm device; the figures and the build times."""
    profile = load_target(core)
    device = profile.device.model_copy(update={"kernels": kernels, "samples": samples})
    profile = profile.model_copy(update={"device": device})
    from edgeprune.measure.tflite_graph import read_graph

    dims = read_graph(path).inputs[0].shape[1:]
    x = np.random.default_rng(1).random((samples, *dims), dtype=np.float32)
    started = time.monotonic()
    run = TflmDevice(profile).run(path, x, RunRequest(engine="tflm", warmup=0, repeats=1))
    figures = run.extra["figures"]
    return {"figures": figures, "build": run.extra["mcu_build"],
            "wall_s": time.monotonic() - started}


def row_for(model: str, core: str, kernels: str, out: dict) -> list[str]:
    f = out["figures"]
    ins = f["instructions_per_invoke"]
    est = f.get("latency_estimate_ms")
    build = out["build"]["cmsis-nn" if kernels != "reference" else "reference"]
    band = f"+-{est['error_band']['rel']:.0%}" if est else ""
    return [model, core, kernels, f"{ins['value']:,}", "yes" if ins["repeat_exact"] else "NO",
            f"{est['cycles']:,}" if est else "-",
            f"{est['value']:.2f} {band}" if est else "-",
            f"{f['flash_bytes']['value']:,}", f"{f['ram_bytes']['value']:,}",
            "yes" if f["mcu_agreement"]["bit_exact"] else "NO",
            f"{build['compiled_now']}/{build['objects']} in {build['compile_s']:.0f}",
            f"{build['link_s']:.1f}", f"{build['emulate_s']:.2f}"]


def reference_row(model: str, core: str, ref: dict, build: dict) -> list[str]:
    est = ref.get("latency_estimate_ms")
    return [model, core, f"reference ({ref['cmsis_nn_speedup']:.1f}x)", f"{ref['value']:,}", "-",
            f"{est['cycles']:,}" if est else "-", f"{est['value']:.2f}" if est else "-", "-", "-",
            "yes" if ref["outputs_equal_cmsis_nn"] else "NO",
            f"{build['compiled_now']}/{build['objects']} in {build['compile_s']:.0f}",
            f"{build['link_s']:.1f}", f"{build['emulate_s']:.2f}"]


HEADER = ["model", "core", "kernels", "instructions", "repeats", "cycles (est.)",
          "latency ms (est.)", "flash B", "RAM B", "bit-exact", "compiled (s)", "link s",
          "emulate s"]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    for r in [HEADER, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


# --------------------------------------------------------------------------- fitting


def fit(folder: Path) -> None:
    """Recount the calibration models on M4 and M7 and refit both calibrations."""
    import tomllib

    counts: dict[tuple[str, str], dict] = {}
    rows_m4 = tomllib.loads(calibration_path("cortex-m4").read_text())["rows"]
    for model in dict.fromkeys(r["model"] for r in rows_m4):
        path = int8_tflite(model, folder)
        for core in ("cortex-m4", "cortex-m7"):
            f = measure(path, core, "cmsis-nn", samples=1)["figures"]
            counts[(model, core)] = f["instructions_per_invoke"]
            print(f"counted {model} on {core}: {f['instructions_per_invoke']['value']:,}")
    m4 = tomllib.loads(calibration_path("cortex-m4").read_text())
    m4_cycles = {}
    rows = []
    for r in m4["rows"]:
        cycles = r["published_ms"] * r["clock_mhz"] * 1e3
        m4_cycles[r["model"]] = cycles
        rows.append((r["model"], cycles, counts[(r["model"], "cortex-m4")]["value"]))
    cpi4, band4 = _fit_cpi(rows, "cortex-m4 (published CMSIS-NN figures)")
    _fit_classes(rows, counts, "cortex-m4")
    m7 = tomllib.loads(calibration_path("cortex-m7").read_text())
    rows7 = []
    for r in m7["rows"]:
        ratio = (r["m7_clock_mhz"] / r["m7_throughput"]) / (r["m4_clock_mhz"] / r["m4_throughput"])
        rows7.append((f"{r['model']} via {r['engine'].split(' (')[0]} (M7/M4 {ratio:.3f})",
                      m4_cycles[r["model"]] * ratio, counts[(r["model"], "cortex-m7")]["value"]))
    cpi7, spread7 = _fit_cpi(rows7, "cortex-m7 (derived)")
    band7 = round((1 + spread7) * (1 + band4) - 1, 3)
    _rewrite(calibration_path("cortex-m4"), cpi4, band4)
    _rewrite(calibration_path("cortex-m7"), cpi7, band7)
    print(f"\ncortex-m4: {cpi4:.4f} cycles/instruction, band +-{band4:.1%}; cortex-m7: {cpi7:.4f}, "
          f"band +-{band7:.1%} (row spread {spread7:.1%} combined with the M4 band)")


def _fit_cpi(rows: list[tuple[str, float, int]], title: str) -> tuple[float, float]:
    cpi = math.exp(sum(math.log(c / n) for _, c, n in rows) / len(rows))
    print(f"\n{title}: one CPI, least squares on log(cycles)")
    print(f"  {'row':<48} {'instructions':>12} {'cycles':>12} {'CPI':>6} {'est/pub':>8}")
    worst = 0.0
    for name, cycles, n in rows:
        ratio = n * cpi / cycles
        worst = max(worst, abs(ratio - 1))
        print(f"  {name:<48} {n:>12,} {cycles:>12,.0f} {cycles / n:>6.3f} {ratio:>8.3f}")
    print(f"  fitted CPI {cpi:.4f}, max |est/pub - 1| = {worst:.1%}")
    return round(cpi, 4), round(worst, 3)


# Cortex-M4 cycle counts per instruction class (Cortex-M4 Technical Reference Manual,
# "Processor instructions": LDR 2, STR 1, multiply and MAC 1, branch 1 + refill (2-4),
# ALU 1). A single scale is fitted on top (flash wait states, memory).
M4_CLASS_CYCLES = {"load_store": 2.0, "mac": 1.0, "branch": 3.0, "other": 1.0}


def _fit_classes(rows, counts, core: str) -> None:
    doc = {name: sum(counts[(name, core)]["instructions_by_class"][k] * v
                     for k, v in M4_CLASS_CYCLES.items()) for name, _, _ in rows}
    scale = math.exp(sum(math.log(c / doc[name]) for name, c, _ in rows) / len(rows))
    worst = max(abs(doc[name] * scale / c - 1) for name, c, _ in rows)
    print(f"  instruction classes with the TRM's cycles {M4_CLASS_CYCLES}, one scale fitted: "
          f"scale {scale:.3f}, max |est/pub - 1| = {worst:.1%}")
    for name, c, _ in rows:
        print(f"    {name:<6} by class {counts[(name, core)]['instructions_by_class']} "
              f"est/pub {doc[name] * scale / c:.3f}")


def _rewrite(path: Path, cpi: float, band: float) -> None:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("cycles_per_instruction ="):
            line = f"cycles_per_instruction = {cpi}   # fitted by benchmarks/mcu.py --fit"
        elif line.startswith("error_band_rel ="):
            line = f"error_band_rel = {band}          # max |estimate / published - 1| over the rows"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,kws,ic")
    parser.add_argument("--cores", default="cortex-m4,cortex-m7")
    parser.add_argument("--kernels", choices=["cmsis-nn", "reference", "both"], default="cmsis-nn")
    parser.add_argument("--cold", action="store_true", help="use an empty cache (first build)")
    parser.add_argument("--fit", action="store_true", help="refit the calibrations")
    args = parser.parse_args()
    if args.cold:
        os.environ["EDGEPRUNE_CACHE"] = tempfile.mkdtemp(prefix="edgeprune-mcu-cold-")
        print(f"empty cache: {os.environ['EDGEPRUNE_CACHE']}")
    with tempfile.TemporaryDirectory(prefix="edgeprune-mcu-bench-") as tmp:
        if args.fit:
            fit(Path(tmp))
            return 0
        rows = []
        for model in args.models.split(","):
            path = int8_tflite(model, Path(tmp))
            for core in args.cores.split(","):
                try:
                    out = measure(path, core, args.kernels)
                except EdgepruneError as exc:
                    print(f"{model} on {core} ({args.kernels}): {exc}")
                    continue
                rows.append(row_for(model, core, "cmsis-nn" if args.kernels == "both"
                                    else args.kernels, out))
                ref = out["figures"].get("reference_kernels")
                if ref is not None:
                    rows.append(reference_row(model, core, ref, out["build"]["reference"]))
                print(f"  {model} on {core}: {out['wall_s']:.1f} s", flush=True)
        print()
        print_table(rows)
        print("\nrepeats: sample 0 invoked again twice, counts equal. bit-exact: the emulated "
              "core's outputs equal tflite-micro's Python interpreter's on the same samples "
              "(reference rows: equal to the CMSIS-NN outputs). compiled: TFLM objects compiled "
              "now / needed, in seconds (0/N: all cached).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
