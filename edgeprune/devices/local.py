"""Run on this machine, in this process, with the same runner code the devices use."""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UnsupportedError
from ..runtimes import runner
from .base import RunRequest, RunResult
from .job import job_request, op_rows


class LocalDevice:
    kind = "local"

    def __init__(self, profile=None):
        self.profile = profile

    def describe(self) -> str:
        return f"local {platform.machine()}"

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        try:
            with tempfile.TemporaryDirectory(prefix="edgeprune-ops-") as ops_dir:
                payload, ops = job_request(request, Path(artifact), Path(ops_dir), absolute=True)
                result, outputs = runner.run_job(payload, inputs, str(artifact))
        except runner.RunnerError as exc:
            if exc.stage == "runtime-missing":
                raise DeviceError(str(exc), where=self.describe(),
                                  fix="install the runtime (pip install ai-edge-litert onnxruntime)") from None
            raise UnsupportedError(str(exc), where=str(artifact),
                                   fix="the target's runtime cannot load this artifact; "
                                       "see the recipe's quantize and tflite_sparse_encoding") from None
        return RunResult(outputs=outputs, latency_ms=result["latency_ms"], runtime=result["runtime"],
                         where=self.describe(), ops=op_rows(ops, result),
                         extra={"threads": result["threads"], "delegate": result["delegate"],
                                "outputs_layout": result["outputs_layout"]})
