"""Run on this machine, in this process, with the same runner code the devices use."""

from __future__ import annotations

import platform
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UnsupportedError
from ..runtimes import runner
from .base import AbRequest, RunRequest, RunResult, run_result
from .job import job_request, op_rows


class LocalDevice:
    kind = "local"

    def __init__(self, profile=None):
        self.profile = profile

    def describe(self) -> str:
        return f"local {platform.machine()}"

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        with self._errors(artifact):
            with tempfile.TemporaryDirectory(prefix="edgeprune-ops-") as ops_dir:
                payload, ops = job_request(request, Path(artifact), Path(ops_dir), absolute=True)
                result, outputs = runner.run_job(payload, inputs, str(artifact))
        return run_result(result, outputs, self.describe(), ops=op_rows(ops, result))

    def run_ab(self, first: Path, second: Path, inputs: tuple[np.ndarray, np.ndarray],
               request: AbRequest) -> dict:
        with self._errors(second):
            result = runner.run_ab_job(request.to_json(first.name, second.name), inputs[0],
                                       inputs[1], str(first), str(second))
        return {**result["ab"], "runtime": result["runtime"], "where": self.describe()}

    @contextmanager
    def _errors(self, artifact: Path):
        try:
            yield
        except runner.RunnerError as exc:
            if exc.stage == "runtime-missing":
                raise DeviceError(str(exc), where=self.describe(),
                                  fix="install the runtime (pip install ai-edge-litert onnxruntime)") from None
            raise UnsupportedError(str(exc), where=str(artifact),
                                   fix="the target's runtime cannot load this artifact; "
                                       "see the recipe's quantize and tflite_sparse_encoding") from None
