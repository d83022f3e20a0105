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
        with self._errors(artifact, request):
            with tempfile.TemporaryDirectory(prefix="edgeprune-ops-") as ops_dir:
                payload, ops = job_request(request, Path(artifact), Path(ops_dir), absolute=True)
                result, outputs = runner.run_job(payload, inputs, str(artifact))
        return run_result(result, outputs, self.describe(), ops=op_rows(ops, result))

    def run_ab(self, first: Path, second: Path, inputs: tuple[np.ndarray, np.ndarray],
               request: AbRequest) -> dict:
        with self._errors(second, request):
            result = runner.run_ab_job(request.to_json(first.name, second.name), inputs[0],
                                       inputs[1], str(first), str(second))
        return {**result["ab"], "runtime": result["runtime"], "where": self.describe()}

    @contextmanager
    def _errors(self, artifact: Path, request):
        try:
            yield
        except runner.RunnerError as exc:
            if exc.stage == "runtime-missing":
                raise DeviceError(str(exc), where=self.describe(),
                                  fix="install the runtime (pip install ai-edge-litert onnxruntime)") from None
            raise _unsupported(str(exc), artifact, request) from None
        except Exception as exc:  # a runtime's own error while running the model (RuntimeError, ...)
            raise _unsupported(f"{type(exc).__name__}: {exc}", artifact, request) from None


def _unsupported(message: str, artifact: Path, request) -> UnsupportedError:
    """The runtime failed on the model: name the op when the message allows."""
    from ..runtimes.probe import name_op

    op = name_op(message, artifact)
    first = message.strip().splitlines()[0][:300] if message.strip() else "no message"
    return UnsupportedError(f"{request.engine} (delegate {request.delegate!r}) fails on this model"
                            + (f" at {op}" if op else "") + f": {first}", where=str(artifact),
                            fix="the target's runtime cannot run this artifact; drop its precision "
                                "from recipe.quantize, or change the layer named")
