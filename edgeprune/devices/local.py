"""Run on this machine, in this process, with the same runner code the devices use."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UnsupportedError
from ..runtimes import runner
from .base import RunRequest, RunResult


class LocalDevice:
    kind = "local"

    def __init__(self, profile=None):
        self.profile = profile

    def describe(self) -> str:
        return f"local {platform.machine()}"

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        try:
            result, outputs = runner.run_job(request.to_json(artifact.name), inputs, str(artifact))
        except runner.RunnerError as exc:
            if exc.stage == "runtime-missing":
                raise DeviceError(str(exc), where=self.describe(),
                                  fix="install the runtime (pip install ai-edge-litert onnxruntime)") from None
            raise _unsupported(str(exc), artifact, request) from None
        except Exception as exc:  # a runtime's own error while running the model (RuntimeError, ...)
            raise _unsupported(f"{type(exc).__name__}: {exc}", artifact, request) from None
        return RunResult(outputs=outputs, latency_ms=result["latency_ms"], runtime=result["runtime"],
                         where=self.describe(), extra={"threads": result["threads"],
                                                       "delegate": result["delegate"]})


def _unsupported(message: str, artifact: Path, request: RunRequest) -> UnsupportedError:
    """The runtime failed on the model: name the op when the message allows."""
    from ..runtimes.probe import name_op

    op = name_op(message, artifact)
    first = message.strip().splitlines()[0][:300] if message.strip() else "no message"
    return UnsupportedError(f"{request.engine} (delegate {request.delegate!r}) fails on this model"
                            + (f" at {op}" if op else "") + f": {first}", where=str(artifact),
                            fix="the target's runtime cannot run this artifact; drop its precision "
                                "from recipe.quantize, or change the layer named")
