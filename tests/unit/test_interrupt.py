"""SIGTERM is honoured within 2 s even inside a TFLite conversion, and a run writes nothing
outside --out and the cache (no ~/.keras, no ONNX Runtime telemetry, no system temp files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgeprune.keras_env as keras_env
from edgeprune.interrupt import call_interruptibly

REPO = Path(__file__).resolve().parents[2]


def _isolated_env(tmp_path: Path) -> dict:
    for name in ("home", "systmp", "cache"):
        (tmp_path / name).mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEPRUNE_", "XDG_", "KERAS_", "ORT_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "home" / ".cache"),
               TMPDIR=str(tmp_path / "systmp"), EDGEPRUNE_CACHE=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


def test_call_interruptibly_returns_value_and_reraises_errors():
    assert call_interruptibly(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        call_interruptibly(lambda: 1 / 0)


def test_sigterm_during_tflite_conversion_exits_within_2s_leaving_nothing(tmp_path, keras):
    keras_env.set_seed(0)
    layers = [keras.layers.Conv2D(16, 3, padding="same", activation="relu") for _ in range(4)]
    model = keras.Sequential([keras.Input((16, 16, 3)), *layers, keras.layers.Flatten(), keras.layers.Dense(3)])
    model.save(tmp_path / "m.h5")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((16, 16, 16, 3), dtype=np.float32),
             y_train=np.arange(16) % 3, x_test=rng.random((4, 16, 16, 3), dtype=np.float32),
             y_test=np.arange(4) % 3)
    (tmp_path / "r.toml").write_text('quantize = ["int8"]\nformats = ["tflite"]\nprune = { final_sparsity = 0.5 }\n'
                                     'finetune = { epochs = 0 }\nrepresentative_samples = 16\n')
    env = _isolated_env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune", "export", str(tmp_path / "m.h5"), "--data",
                             str(tmp_path / "d.npz"), "--recipe", str(tmp_path / "r.toml"), "--target", "host",
                             "--out", str(tmp_path / "out")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "cache" / "tmp"
    deadline = time.monotonic() + 240
    converting = False
    while proc.poll() is None and time.monotonic() < deadline and not converting:
        # the TFLite converter's own temporary SavedModel appears inside the run's folder
        converting = any(p.is_dir() for run in runs.glob("run-*") for p in run.glob("tmp*"))
        time.sleep(0.02)
    assert converting, "the export never reached the TFLite conversion"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert took < 2.0, f"SIGTERM took {took:.2f}s"
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    gone = time.monotonic() + 5  # a converter still running in a worker: removed just after exit
    while list(runs.iterdir()) and time.monotonic() < gone:
        time.sleep(0.05)
    assert list(runs.iterdir()) == []
    assert list((tmp_path / "home").rglob("*")) == [] and list((tmp_path / "systmp").rglob("*")) == []


def test_onnxruntime_writes_no_telemetry_files_once_edgeprune_is_imported(tmp_path):
    code = ("import edgeprune, numpy as np, onnx, onnxruntime as ort\n"
            "from onnx import helper, TensorProto\n"
            "g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',\n"
            "    [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2])],\n"
            "    [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2])])\n"
            "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])\n"
            "s = ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider'])\n"
            "print(s.run(None, {'x': np.ones((1, 2), np.float32)})[0].sum())\n")
    env = _isolated_env(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "2.0", out.stderr
    assert list((tmp_path / "home").rglob("*")) == []
