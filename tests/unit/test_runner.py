"""The runner script is self-contained: it runs as a plain script in a fresh interpreter."""

import json
import shutil
import subprocess
import sys

import numpy as np

import edgeprune.runtimes.runner as runner
from edgeprune.export.tflite import to_tflite


def _job(tmp_path, tiny_cnn, tiny_data, **request):
    job = tmp_path / "job"
    job.mkdir()
    (job / "model.tflite").write_bytes(to_tflite(tiny_cnn, "int8", representative=tiny_data.x_train[:50]))
    np.save(job / "inputs.npy", tiny_data.x_test[:10])
    req = {"artifact": "model.tflite", "engine": "litert", "threads": 1, "delegate": "xnnpack",
           "warmup": 2, "repeats": 7}
    req.update(request)
    (job / "request.json").write_text(json.dumps(req))
    script = tmp_path / "runner.py"
    shutil.copy(runner.__file__, script)
    return job, script


def test_runner_script_runs_standalone_and_writes_outputs(tmp_path, tiny_cnn, tiny_data):
    job, script = _job(tmp_path, tiny_cnn, tiny_data)
    proc = subprocess.run([sys.executable, "-I", str(script), str(job)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["ok"] and len(result["latency_ms"]) == 7 and result["samples"] == 10
    outputs = np.load(job / "outputs.npy")
    _, in_process = runner.run_job(json.loads((job / "request.json").read_text()), tiny_data.x_test[:10],
                                   str(job / "model.tflite"))
    assert np.array_equal(outputs, in_process)


def test_runner_reports_load_failure_as_json(tmp_path, tiny_cnn, tiny_data):
    job, script = _job(tmp_path, tiny_cnn, tiny_data)
    (job / "model.tflite").write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-I", str(script), str(job)], capture_output=True, text=True,
                          timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 2 and not result["ok"] and result["stage"] == "load"
