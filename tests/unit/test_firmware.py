"""Firmware sources: compiled with the real gcc/g++, linked and run.

TFLite Micro's headers are not installed here and no pip or apt package ships
``micro_mutable_op_resolver.h`` (the tflite-micro wheel has the compiled
interpreter only), so the C++ op-resolver header is compiled against a stand-in,
written below, that declares the real ``MicroMutableOpResolver`` methods it may
call with the real signatures' shape and counts registrations like the real one
(an op beyond the template's capacity is an error). The C array and constants
need no TFLM and are compiled and checked as they are.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeprune import keras_env
from edgeprune.errors import ConfigError
from edgeprune.export.firmware import write_c_sources
from edgeprune.runtimes.tflm import find_min_arena

C_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CXX_FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]

# The MicroMutableOpResolver Add methods a stand-in offers: real TFLM names only.
_STANDIN_METHODS = ("AddAdd", "AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D",
                    "AddFullyConnected", "AddMaxPool2D", "AddMean", "AddQuantize",
                    "AddDequantize", "AddRelu", "AddReshape", "AddSoftmax")

_STANDIN = """\
// Stand-in for tensorflow/lite/micro/micro_mutable_op_resolver.h (see the test's docstring).
#pragma once
typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
%s
  unsigned int GetRegistrationLength() const { return registrations_len_; }
 private:
  TfLiteStatus Add() {
    if (registrations_len_ >= tOpCount) return kTfLiteError;
    ++registrations_len_;
    return kTfLiteOk;
  }
  unsigned int registrations_len_ = 0;
};
}  // namespace tflite
""" % "\n".join(f"  TfLiteStatus {m}() {{ return Add(); }}" for m in _STANDIN_METHODS)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """8x8x1 -> Conv2D(4, 3) -> Flatten -> Dense(10), full int8 with int8 I/O."""
    keras, tf = keras_env.keras(), keras_env.tf()
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(10)])

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(16):
            yield [rng.random((1, 8, 8, 1), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("fw-model") / "int8.tflite"
    path.write_bytes(converter.convert())
    return path


def _compile(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return proc


def _standin_include(tmp: Path) -> Path:
    inc = tmp / "standin"
    header = inc / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    header.parent.mkdir(parents=True, exist_ok=True)
    header.write_text(_STANDIN)
    return inc


_MAIN = """\
#include <cstdint>
#include <cstdio>
%(includes)s
int main() {
  int failures = 0;
%(checks)s
  if (failures == 0) std::puts("all ok");
  return failures;
}
"""

_CHECK = """\
  {
    %(sym)s_OpResolver resolver;
    if (%(sym)s_register_ops(resolver) != kTfLiteOk) { std::puts("%(sym)s: register failed"); ++failures; }
    if (resolver.GetRegistrationLength() != %(SYM)s_OP_COUNT) { std::puts("%(sym)s: op count"); ++failures; }
    if (reinterpret_cast<std::uintptr_t>(%(sym)s) %% 16 != 0) { std::puts("%(sym)s: not aligned"); ++failures; }
    if (%(sym)s_len != sizeof(%(sym)s) || %(sym)s[4] != 'T' || %(sym)s[7] != '3') { std::puts("%(sym)s: bytes"); ++failures; }
    if (%(SYM)s_ARENA_BYTES %% 16 != 0 || %(SYM)s_ARENA_BYTES < %(SYM)s_ARENA_MEASURED_BYTES) { std::puts("%(sym)s: arena"); ++failures; }
    std::printf("%(sym)s %%u bytes, arena %%u, input %%d elements, first dim %%d\\n", %(sym)s_len,
                (unsigned)%(SYM)s_ARENA_BYTES, %(SYM)s_INPUT0_ELEMENTS, %(sym)s_input0_shape[0]);
  }
"""


def _build_and_run(tmp: Path, fw: Path, symbols: list[str]) -> str:
    """Compile each <symbol>.c with gcc as C, a main with g++ that uses every resolver, link, run."""
    inc = _standin_include(tmp)
    objects = []
    for sym in symbols:
        obj = tmp / f"{sym}.o"
        _compile(["gcc", *C_FLAGS, "-c", str(fw / f"{sym}.c"), "-o", str(obj)], tmp)
        objects.append(str(obj))
    main = tmp / "main.cc"
    main.write_text(_MAIN % {
        "includes": "\n".join(f'#include "{s}_ops.h"' for s in symbols),
        "checks": "".join(_CHECK % {"sym": s, "SYM": s.upper()} for s in symbols)})
    exe = tmp / "fw_check"
    _compile(["g++", *CXX_FLAGS, f"-I{fw}", f"-I{inc}", str(main), *objects, "-o", str(exe)], tmp)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_write_c_sources_compiles_as_c11_when_warnings_are_errors(model, tmp_path):
    paths = write_c_sources(model, tmp_path / "fw", arena_bytes=2080)
    assert [p.name for p in paths] == ["g_model.h", "g_model.c", "g_model_ops.h",
                                       "g_model.manifest.json"]
    assert "_Alignas(16)" in paths[1].read_text() and "alignas(16)" in paths[1].read_text()
    _compile(["gcc", *C_FLAGS, "-c", str(paths[1]), "-o", str(tmp_path / "g_model.o")], tmp_path)
    # The same source as C++ (some firmware builds compile everything with g++).
    _compile(["g++", *CXX_FLAGS, "-x", "c++", "-c", str(paths[1]), "-o", str(tmp_path / "cc.o")],
             tmp_path)


def test_resolver_registers_exactly_the_model_ops_when_linked_and_run(model, tmp_path):
    fw = tmp_path / "fw"
    write_c_sources(model, fw, arena_bytes=2080)
    out = _build_and_run(tmp_path, fw, ["g_model"])
    assert "all ok" in out and f"g_model {model.stat().st_size} bytes" in out
    ops = (fw / "g_model_ops.h").read_text()
    assert re.findall(r"resolver\.(Add\w+)\(\)", ops) == ["AddConv2D", "AddReshape",
                                                           "AddFullyConnected"]
    assert "#define G_MODEL_OP_COUNT 3" in (fw / "g_model.h").read_text()


def test_ops_header_stops_a_c_compile_with_a_clear_error(model, tmp_path):
    fw = tmp_path / "fw"
    write_c_sources(model, fw, arena_bytes=2080)
    user = tmp_path / "user.c"
    user.write_text('#include "g_model_ops.h"\n')
    proc = subprocess.run(["gcc", *C_FLAGS, f"-I{fw}", "-c", str(user), "-o", str(tmp_path / "u.o")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "g_model_ops.h is C++" in proc.stderr


def test_two_symbols_compile_and_link_together_without_clashes(model, tmp_path):
    fw = tmp_path / "fw"
    write_c_sources(model, fw, symbol="kws_model", arena_bytes=2080)
    write_c_sources(model, fw, symbol="vww_model", arena_bytes=4000, headroom_fraction=0.25)
    out = _build_and_run(tmp_path, fw, ["kws_model", "vww_model"])
    assert "all ok" in out
    assert "arena 2288," in out and "arena 5008," in out     # ceil(x * 1.1 or 1.25) to 16


def test_c_array_bytes_equal_the_tflite_file(model, tmp_path):
    fw = tmp_path / "fw"
    write_c_sources(model, fw, arena_bytes=2080)
    source = (fw / "g_model.c").read_text()
    body = source[source.index("g_model[G_MODEL_LEN] = {"):source.index("};")]
    parsed = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert parsed == model.read_bytes()
    assert f"#define G_MODEL_LEN {len(parsed)}u" in (fw / "g_model.h").read_text()


def test_write_c_sources_is_byte_identical_when_generated_twice(model, tmp_path):
    first = write_c_sources(model, tmp_path / "a", arena_bytes=2080)
    snapshot = {p.name: p.read_bytes() for p in first}
    second = write_c_sources(model, tmp_path / "b", arena_bytes=2080)
    again = write_c_sources(model, tmp_path / "a", arena_bytes=2080)
    assert {p.name: p.read_bytes() for p in second} == snapshot
    assert {p.name: p.read_bytes() for p in again} == snapshot
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(snapshot)  # no temp left


def test_manifest_records_files_sha_arena_ops_and_io(model, tmp_path):
    import hashlib

    paths = write_c_sources(model, tmp_path / "fw", symbol="kws_model", arena_bytes=3001,
                            headroom_fraction=0.2)
    manifest = json.loads(paths[3].read_text())
    assert manifest["files"] == {"header": "kws_model.h", "source": "kws_model.c",
                                 "ops_header": "kws_model_ops.h"}
    assert manifest["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert manifest["array"]["length"] == model.stat().st_size
    assert manifest["arena"]["measured_bytes"] == 3001
    assert manifest["arena"]["bytes"] == math.ceil(math.ceil(3001 * 1.2) / 16) * 16 == 3616
    assert [op["name"] for op in manifest["ops"]] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    (inp,), (out,) = manifest["inputs"], manifest["outputs"]
    assert inp["shape"] == [1, 8, 8, 1] and inp["dtype"] == "int8" and inp["scale"] > 0
    assert out["shape"] == [1, 10] and out["dtype"] == "int8"
    header = paths[0].read_text()
    assert f'#define KWS_MODEL_SHA256 "{manifest["model"]["sha256"]}"' in header
    assert f"#define KWS_MODEL_INPUT0_ZERO_POINT {_c_int(inp['zero_point'])}" in header


def _c_int(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def test_write_c_sources_measures_the_arena_when_none_is_given(model, tmp_path):
    paths = write_c_sources(model, tmp_path / "fw", arena_bytes=None, headroom_fraction=0.0)
    manifest = json.loads(paths[3].read_text())
    measured = find_min_arena(model).min_bytes
    assert manifest["arena"]["measured_bytes"] == measured == manifest["arena"]["bytes"]
    assert manifest["arena"]["measured_by"].startswith("tflite-micro ")


@pytest.mark.parametrize("symbol", ["1model", "my-model", "int", "g model", ""])
def test_write_c_sources_rejects_symbol_when_not_a_c_identifier(model, tmp_path, symbol):
    with pytest.raises(ConfigError, match="symbol"):
        write_c_sources(model, tmp_path / "fw", symbol=symbol, arena_bytes=2080)
    assert not (tmp_path / "fw").exists()


def test_firmware_artifact_records_parent_and_model_bytes(model, tmp_path):
    import hashlib

    from edgeprune.export.firmware import firmware_artifact
    from edgeprune.types import Artifact

    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    parent = Artifact(name="int8.tflite", path=model, format="tflite", precision="int8",
                      encoding="dense", sha256=sha, parent="compressed.keras")
    art = firmware_artifact(parent, tmp_path / "fw", symbol="kws_model", arena_bytes=2080)
    assert art.format == "c_array" and art.parent == "int8.tflite" and art.precision == "int8"
    assert art.path == tmp_path / "fw" / "kws_model.manifest.json"
    assert art.sha256 == hashlib.sha256(art.path.read_bytes()).hexdigest()
    assert art.settings["model_bytes"] == model.stat().st_size
    assert art.settings["model_sha256"] == sha
    assert art.settings["arena_bytes"] == 2288
    assert art.settings["files"] == ["kws_model.h", "kws_model.c", "kws_model_ops.h",
                                     "kws_model.manifest.json"]
