"""The same model, data, recipe and seed give byte-identical .onnx files in any process and for
any target: two processes (string hashing seeded differently, as two runs of a real process
are) export a residual model with BatchNormalization through the pipeline's export stage, one
for target host and one for rpi4, and the files are compared byte for byte.

The BatchNorm layers are untrained (zero shifts), so the convolutions' folded biases are equal
constants: the case where tf2onnx's merge kept a process-dependent name."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = r'''
import sys
from pathlib import Path
import numpy as np
from edgeprune import keras_env
from edgeprune.pipeline import export_artifacts
from edgeprune.targets import load_target
from edgeprune.types import CompressedModel, Dataset, SourceModel

keras = keras_env.keras()
keras_env.set_seed(0)
L = keras.layers
inp = keras.Input((8, 8, 3))
x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", use_bias=False)(inp)))
for filters, stride in ((8, 1), (16, 2)):
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, strides=stride, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
    if stride != 1:
        x = L.Conv2D(filters, 1, strides=stride)(x)
    x = L.ReLU()(L.Add()([x, y]))
model = keras.Model(inp, L.Dense(4)(L.GlobalAveragePooling2D()(x)))
rng = np.random.default_rng(0)
xs = rng.random((40, 8, 8, 3), dtype=np.float32)
ys = rng.integers(0, 4, 40)
data = Dataset(xs[:30], ys[:30], xs[30:35], ys[30:35], xs[35:], ys[35:], 4, "generated", "x")
source = SourceModel(model, (8, 8, 3), 4, "built", "x")
out = Path(sys.argv[2])
out.mkdir()
export_artifacts(CompressedModel(model, None), load_target(sys.argv[1]), data, source, out, print,
                 names=["float32.onnx", "int8.onnx"])
'''


def _export(target: str, out: Path, hash_seed: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, target, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_onnx_export_is_byte_identical_across_processes_and_targets(tmp_path):
    runs = {"host": (tmp_path / "host", "1"), "rpi4": (tmp_path / "rpi4", "2")}
    procs = {t: _export(t, out, seed) for t, (out, seed) in runs.items()}
    for target, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    for name in ("model_float32.onnx", "model_int8.onnx"):
        host, rpi4 = (runs[t][0] / name for t in ("host", "rpi4"))
        assert host.stat().st_size > 1000 and host.read_bytes() == rpi4.read_bytes(), name
