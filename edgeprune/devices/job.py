"""A job folder for the runner (``runtimes/runner.py``): what every device sends.

``write_job`` fills a folder with the runner, the artifact, ``inputs.npy`` and
``request.json``; with ``RunRequest.op_repeats`` also the artifact's one-op
models (:mod:`edgeprune.measure.op_models`), named in the request's ``ops``.
``op_rows`` joins the runner's per-op timings (and, under emulation, the
instruction windows) with the ops' names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..measure.op_models import OpModel, split_ops
from ..runtimes import runner
from .base import AbRequest, RunRequest

OP_WARMUP = 2


def write_job(job: Path, artifact: Path, inputs: np.ndarray, request: RunRequest, *,
              mark_invokes: bool = False) -> list[OpModel]:
    """Fill ``job`` (created if missing) for a run of ``artifact``; returns the op models."""
    job.mkdir(parents=True, exist_ok=True)
    shutil.copy2(runner.__file__, job / "runner.py")
    shutil.copy2(artifact, job / artifact.name)
    np.save(job / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
    payload, ops = job_request(request, artifact, job, mark_invokes=mark_invokes)
    (job / "request.json").write_text(json.dumps(payload))
    return ops


def write_ab_job(job: Path, first: Path, second: Path, inputs: tuple[np.ndarray, np.ndarray],
                 request: AbRequest) -> None:
    """Fill ``job`` for an A/B run of ``first`` against ``second`` (the runner's ``ab_artifact``)."""
    job.mkdir(parents=True, exist_ok=True)
    shutil.copy2(runner.__file__, job / "runner.py")
    names = (f"a_{first.name}", f"b_{second.name}")   # the two may share a file name
    shutil.copy2(first, job / names[0])
    shutil.copy2(second, job / names[1])
    np.save(job / "inputs.npy", np.ascontiguousarray(inputs[0], dtype=np.float32))
    np.save(job / "inputs_ab.npy", np.ascontiguousarray(inputs[1], dtype=np.float32))
    (job / "request.json").write_text(json.dumps(request.to_json(*names)))


def job_request(request: RunRequest, artifact: Path, folder: Path, *, mark_invokes: bool = False,
                absolute: bool = False) -> tuple[dict, list[OpModel]]:
    """The request's JSON, with the one-op models written into ``folder`` when asked for.

    ``absolute``: the runner reads the op models from ``folder`` itself (an in-process
    run), not from the artifact's folder.
    """
    payload = request.to_json(artifact.name, mark_invokes=mark_invokes)
    if request.op_repeats <= 0 or artifact.suffix != ".tflite" or request.engine != "litert":
        return payload, []
    ops = split_ops(artifact)
    for op in ops:
        if op.data is not None:
            (folder / op.file).write_bytes(op.data)
    payload["ops"] = {"models": [{"file": op.file, "index": op.index} for op in ops if op.data],
                      "warmup": OP_WARMUP, "repeats": request.op_repeats}
    if absolute:
        payload["ops"]["folder"] = str(folder)
    return payload, ops


def op_rows(ops: list[OpModel], result: dict, windows: list[int] | None = None,
            by_class: list[dict[str, int]] | None = None) -> list[dict] | None:
    """Per-op rows from the runner's ``result["ops"]``; ``windows``/``by_class``: the
    instruction windows that follow the whole model's (emulated runs), in the same order."""
    if not ops:
        return None
    timed = {row["index"]: row for row in result.get("ops", [])}
    position = 0
    rows = []
    for op in ops:
        row = {"index": op.index, "op": op.op, "name": op.name, "weight_bytes": op.weight_bytes,
               "latency_ms": None, "instructions": None, "instructions_by_class": None,
               "error": op.reason or None}
        got = timed.get(op.index)
        if got is not None and "error" in got:
            row["error"] = got["error"]
        elif got is not None:
            n = len(got["latency_ms"])
            row["latency_ms"] = got["latency_ms"]
            if windows is not None:
                row["instructions"] = windows[position:position + n]
                row["instructions_by_class"] = (by_class or [])[position:position + n] or None
            position += n
        rows.append(row)
    return rows
