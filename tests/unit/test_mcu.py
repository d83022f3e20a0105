"""The microcontroller measurement: TFLite Micro + CMSIS-NN compiled for a Cortex-M4F, run
under qemu-system-arm, counted by the TCG plugin; the boards of the Cortex-M7 and M55
profiles; budgets judged on the estimate.

The first test pays the cold build of TFLite Micro for the tiny model's ops (the
framework and four kernels, about a hundred files; cached per object for the session).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeprune import keras_env
from edgeprune.devices.base import RunRequest
from edgeprune.export.tflite import to_tflite
from edgeprune.mcu import build, harness, run
from edgeprune.runtimes.tflm import TflmDevice
from edgeprune.targets import load_target

SHAPE = (8, 8, 1)


def _int8_tflite(path: Path, filters: int) -> Path:
    keras = keras_env.keras()
    keras.utils.set_random_seed(0)
    # the ops of the reference digits model, so that its export reuses these objects
    model = keras.Sequential([keras.Input(SHAPE),
                              keras.layers.Conv2D(filters, 3, activation="relu", name="conv"),
                              keras.layers.MaxPooling2D(2, name="pool"),
                              keras.layers.Flatten(name="flatten"), keras.layers.Dense(10, name="logits")])
    rep = np.random.default_rng(0).random((16, *SHAPE), dtype=np.float32)
    path.write_bytes(to_tflite(model, "int8", representative=rep, int8_io=True))
    return path


def _m4(samples: int = 4, **device):
    profile = load_target("cortex-m4")
    dev = profile.device.model_copy(update={"samples": samples, **device})
    return profile.model_copy(update={"device": dev})


@pytest.fixture(scope="module")
def m4_runs(tmp_path_factory):
    """The tiny CNN with 4 and with 8 filters, each run on the emulated Cortex-M4."""
    folder = tmp_path_factory.mktemp("mcu")
    inputs = np.random.default_rng(1).random((6, *SHAPE), dtype=np.float32)
    out = {}
    for filters in (4, 8):
        model = _int8_tflite(folder / f"conv{filters}.tflite", filters)
        out[filters] = (model, TflmDevice(_m4()).run(model, inputs, RunRequest(engine="tflm", warmup=0,
                                                                                 repeats=1)))
    return out


def test_mcu_counts_repeat_exactly_and_outputs_are_bit_exact(m4_runs):
    _, result = m4_runs[4]
    ins = result.extra["figures"]["instructions_per_invoke"]
    assert ins["repeat_exact"] and len(set(ins["repeat_counts"])) == 1
    assert ins["sample_size"] == 4 and result.instructions_per_invoke == ins["samples"]
    assert 5_000 < ins["value"] < 500_000
    assert sum(ins["instructions_by_class"].values()) == ins["samples"][0]
    assert ins["instructions_by_class"]["mac"] > 0 and "CMSIS-NN" in ins["by"]
    agree = result.extra["figures"]["mcu_agreement"]
    assert agree["bit_exact"] and agree["samples"] == 4 and agree["profiled_run_matches"]


def test_mcu_counts_grow_with_the_convolution_width(m4_runs):
    small = m4_runs[4][1].extra["figures"]
    wide = m4_runs[8][1].extra["figures"]
    conv_small, conv_wide = small["ops"]["rows"][0], wide["ops"]["rows"][0]
    assert conv_small["op"] == conv_wide["op"] == "CONV_2D"
    # twice the filters: twice the multiply-accumulates; im2col and requantization grow less
    macs = conv_small["instructions_by_class"]["mac"], conv_wide["instructions_by_class"]["mac"]
    assert 1.8 * macs[0] < macs[1] < 2.2 * macs[0], macs
    assert conv_wide["instructions"] > 1.2 * conv_small["instructions"]
    assert wide["instructions_per_invoke"]["value"] > small["instructions_per_invoke"]["value"]


def test_mcu_ops_table_follows_the_contract(m4_runs):
    model, result = m4_runs[4]
    ops = result.extra["figures"]["ops"]
    assert [r["op"] for r in ops["rows"]] == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    for row in ops["rows"]:
        assert set(row) >= {"index", "op", "name", "instructions", "ms", "estimate_ms", "share"}
        assert row["instructions"] > 0 and row["ms"] is None and row["estimate_ms"] > 0
    shares = sum(r["share"] for r in ops["rows"])
    assert 0.9 < shares <= 1.0          # the rest: the interpreter between ops


def test_mcu_flash_ram_and_estimate_are_read_from_the_program(m4_runs):
    model, result = m4_runs[4]
    f = result.extra["figures"]
    flash = f["flash_bytes"]
    assert flash["model_bytes"] == model.stat().st_size
    assert flash["value"] == flash["model_bytes"] + flash["code_bytes"]
    assert 20_000 < flash["code_bytes"] < 400_000
    ram = f["ram_bytes"]
    assert ram["value"] == ram["arena_bytes"] + ram["static_data_bytes"] + ram["stack_bytes"]
    assert 0 < ram["arena_used_bytes"] <= ram["arena_bytes"] and 256 < ram["stack_bytes"] < 65_536
    est = f["latency_estimate_ms"]
    assert est["method"] == "estimated" and est["threads"] == 1 and est["clock_mhz"] == 64.0
    assert est["calibration"] == "targets/calibration/mcu-cortex-m4.toml"
    assert set(est["error_band"]) == {"rel", "rows", "how"} and est["error_band"]["rows"] >= 3
    assert est["value"] == pytest.approx(est["cycles"] / 64e3, rel=1e-4)


def _bare_program(folder: Path, core: build.Core) -> Path:
    """The harness's own startup and linker script with a C main that runs a loop of
    1,000 and of 2,000 iterations between the markers (no TFLite Micro)."""
    (folder / "startup.c").write_text(harness._STARTUP % {"stack_paint": "0xA5A5A5A5u"})
    (folder / "link.ld").write_text(harness._LINKER % {
        "flash_origin": core.flash[0], "flash_length": core.flash[1], "ram_origin": core.ram[0],
        "ram_length": core.ram[1], "stack": 4096, "heap": 256})
    (folder / "main.c").write_text("""
#include <stdint.h>
void ep_mark_invoke_begin(void); void ep_mark_invoke_end(void);
void ep_mark_op_begin(void); void ep_mark_op_end(void);
void ep_puts(const char*); void ep_put_uint(const char*, uint32_t); void ep_put_hex(const uint8_t*, uint32_t);
static volatile uint32_t sink;
static void spin(uint32_t n) { for (uint32_t i = 0; i < n; ++i) sink += i; }
int main(void) {
  static const uint8_t out[2] = {0xab, 0xcd};
  for (int r = 0; r < 3; ++r) {
    ep_mark_invoke_begin(); spin(r == 2 ? 2000 : 1000); ep_mark_invoke_end();
    if (r < 2) { ep_puts("output "); ep_put_hex(out, 2); }
  }
  ep_mark_invoke_begin(); ep_mark_op_begin(); spin(10); ep_mark_op_end(); ep_mark_invoke_end();
  ep_puts("profiled "); ep_put_hex(out, 2);
  ep_put_uint("arena_used", 0); ep_put_uint("stack_used", 0); ep_puts("done\\n");
  return 0;
}
""")
    elf = folder / "bare.elf"
    cmd = ["arm-none-eabi-gcc", *core.cflags, "-mthumb", "-O1", "-nostartfiles", "--specs=nano.specs",
           "--specs=nosys.specs", "-Wl,--gc-sections", f"-Wl,-T,{folder / 'link.ld'}", "-o", str(elf),
           str(folder / "main.c"), str(folder / "startup.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return elf


@pytest.mark.parametrize("core_name", ["cortex-m4", "cortex-m7", "cortex-m55"])
def test_each_profile_core_boots_on_its_board_and_counts_exactly(core_name, tmp_path):
    core = build.core_spec(core_name)
    elf = _bare_program(tmp_path, core)
    symbols = harness._symbols(elf)
    bare = harness.Harness(elf=elf, folder=tmp_path, sizes={}, arena_bytes=0, samples=2, repeats=1,
                           output_bytes=2,
                           markers={m: symbols[m][0] & ~1 for m in harness.MARKERS})
    result = run.run_harness(bare, core)
    once, again, double = (w.total for w in result.invokes)
    assert once == again                                    # the same work, the same count
    per_iteration = (double - once) / 1000
    assert per_iteration == int(per_iteration) and 3 <= per_iteration <= 12
    assert once == pytest.approx(1000 * per_iteration, abs=40)   # the loop plus call overhead
    assert len(result.ops) == 1 and result.outputs == [b"\xab\xcd", b"\xab\xcd"]


def test_cortex_m_targets_name_an_emulated_core_with_a_clock():
    for name, machine in (("cortex-m4", "mps2-an386"), ("cortex-m7", "mps2-an500"),
                          ("cortex-m55", "mps3-an547")):
        device = load_target(name).device
        assert device.core == name and device.clock_mhz > 0
        assert build.core_spec(device.core).machine == machine


def test_max_latency_on_a_microcontroller_is_judged_on_the_estimate():
    from edgeprune.budgets import judge_budgets
    from edgeprune.report.schema import ArtifactRecord, figure
    from edgeprune.tasks import OutputTask, Task

    profile = load_target("cortex-m4")
    task = Task(outputs=(OutputTask(name="logits", kind="classification", shape=(10,), num_classes=10),))
    measured = {"accuracy": figure(0.9, "fraction", "x"),
                "host_latency_ms": figure(0.01, "ms", "tflite-micro on tflm (host)"),
                "latency_estimate_ms": figure(1500.0, "ms", "instructions x CPI", method="estimated")}
    deploy = ArtifactRecord(name="int8.tflite", format="tflite", precision="int8", measurements=measured)
    baseline = ArtifactRecord(name="baseline.keras", format="keras", precision="float32",
                              measurements={"accuracy": figure(0.9, "fraction", "x")})
    verdict = next(v for v in judge_budgets(profile, deploy, baseline, Path("unused"), task)
                   if v.name == "max_latency_ms")
    assert verdict.verdict == "fail" and verdict.value == 1500.0
    assert "estimated" in verdict.note
