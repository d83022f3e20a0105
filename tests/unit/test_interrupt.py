"""Long C calls run in a worker so that signals are handled at once (the SIGTERM-in-conversion
test is tests/integration/test_export_digits.py), and ONNX Runtime writes no telemetry files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
