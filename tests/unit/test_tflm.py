"""TflmDevice: op check, the smallest arena found by measurement, outputs against LiteRT.

Everything runs the real tflite-micro interpreter (reference kernels) on tiny models
built here: 8x8x1 -> Conv2D(4, 3) -> Flatten -> Dense(10), full int8 with int8 I/O.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edgeprune import keras_env
from edgeprune.devices import device_for
from edgeprune.devices.base import RunRequest
from edgeprune.errors import UnsupportedError
from edgeprune.export.firmware import write_c_sources
from edgeprune.measure.tflite_graph import read_graph
from edgeprune.runtimes import runner
from edgeprune.runtimes.tflm import TflmDevice, find_min_arena
from edgeprune.targets import load_target

SHAPE = (8, 8, 1)


def _int8_tflite(path: Path, extra_layer=None) -> Path:
    keras, tf = keras_env.keras(), keras_env.tf()
    keras.utils.set_random_seed(0)
    layers = [keras.Input(SHAPE), keras.layers.Conv2D(4, 3, activation="relu", name="conv")]
    if extra_layer is not None:
        layers.append(extra_layer)
    layers += [keras.layers.Flatten(name="flatten"), keras.layers.Dense(10, name="logits")]
    model = keras.Sequential(layers)

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(16):
            yield [rng.random((1, *SHAPE), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> Path:
    return _int8_tflite(tmp_path_factory.mktemp("tflm") / "int8.tflite")


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.random.default_rng(1).random((64, *SHAPE), dtype=np.float32)


_PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime
    interp = runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))
    d = interp.get_input_details(0)
    interp.set_input(np.zeros(d["shape"], d["dtype"]), 0)
    interp.invoke()
    print("invoked")
""")


def _runs_with_arena(model: Path, arena: int) -> bool:
    """Independent of edgeprune's worker: allocate and invoke in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(model), str(arena)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode == 0 and "invoked" in proc.stdout


def test_find_min_arena_is_smallest_working_size(int8_model):
    search = find_min_arena(int8_model)
    assert search.min_bytes > 0 and search.min_bytes % 16 == 0
    assert _runs_with_arena(int8_model, search.min_bytes)
    assert not _runs_with_arena(int8_model, search.min_bytes - 16)
    assert not _runs_with_arena(int8_model, search.min_bytes // 2)
    assert search.probes and all(p.ok == (p.arena_bytes >= search.min_bytes) for p in search.probes)


def test_arena_probe_survives_a_crash_when_arena_is_tiny(int8_model):
    """Measured: TFLM segfaults (it does not fail cleanly) with arenas of 256 bytes or less."""
    from edgeprune.runtimes.tflm import _ProbeServer

    with _ProbeServer(int8_model, 1) as server:
        crashed = server.probe(64)
        after = server.probe(find_min_arena(int8_model).min_bytes)
    assert not crashed.ok and "SIGSEGV" in crashed.why
    assert after.ok


def test_find_min_arena_is_cached_when_called_again(int8_model):
    first = find_min_arena(int8_model)
    started = time.perf_counter()
    again = find_min_arena(int8_model)
    assert again is first
    assert time.perf_counter() - started < 0.5


def test_tflm_outputs_match_litert_within_one_lsb(int8_model):
    """Measured: TFLM's reference kernels and LiteRT's builtin kernels (no delegate) are
    not bit-exact. On these 1,000 random inputs 4 of the 10,000 int8 outputs differ by
    one quantization step (requantization rounding); none by more, and 64 inputs
    happen to match exactly. XNNPACK differs from both by up to one step too."""
    samples = np.random.default_rng(1).random((1000, *SHAPE), dtype=np.float32)
    tflm = TflmDevice().run(int8_model, samples, RunRequest(engine="tflm", warmup=1, repeats=2))
    _, litert = runner.run_job(RunRequest(engine="litert", delegate="none").to_json(int8_model.name),
                               samples, str(int8_model))
    scale = read_graph(int8_model).outputs[0].scale
    steps = np.rint(np.abs(tflm.outputs - litert) / scale)
    assert tflm.outputs.shape == litert.shape == (len(samples), 10)
    assert steps.max() <= 1
    assert (steps == 0).mean() >= 0.99


def test_tflm_run_reports_arena_flash_and_host_timing(int8_model, samples):
    result = TflmDevice().run(int8_model, samples[:4], RunRequest(engine="tflm", warmup=1, repeats=3))
    assert result.arena_bytes == find_min_arena(int8_model).min_bytes
    assert result.latency_is_meaningful is False
    assert len(result.latency_ms) == 3 and all(t > 0 for t in result.latency_ms)
    assert result.runtime.startswith("tflite-micro ") and result.runtime.endswith("reference kernels")
    assert result.where == "tflm (host, reference kernels)"
    assert result.extra["flash_bytes"] == int8_model.stat().st_size
    assert result.extra["ops"] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]


def test_tflm_raises_unsupported_naming_op_and_layer_when_model_has_tile(tmp_path, samples):
    keras, tf = keras_env.keras(), keras_env.tf()
    tile = keras.layers.Lambda(lambda x: tf.tile(x, [1, 2, 1, 1]), name="tile_rows")
    model = _int8_tflite(tmp_path / "tile.tflite", extra_layer=tile)
    assert "TILE" in read_graph(model).op_names()
    with pytest.raises(UnsupportedError) as caught:
        TflmDevice().run(model, samples[:1], RunRequest(engine="tflm"))
    message = str(caught.value)
    assert "TILE" in message and "tile_rows" in message and str(model) in message
    assert caught.value.fix
    with pytest.raises(UnsupportedError, match="TILE"):      # no firmware resolver for it either
        write_c_sources(model, tmp_path / "fw", arena_bytes=4096)


def test_device_for_returns_tflm_device_when_target_is_cortex_m4():
    device = device_for(load_target("cortex-m4"))
    assert isinstance(device, TflmDevice) and device.kind == "tflm"
