"""A/B re-measurement: the baseline's artifact and the report's, timed side by side now.

The report's artifact is the file next to ``report.json`` (checked against the sha256
the report recorded). The baseline's is looked up by its sha256: first in the
artifact store that ``--update-baseline`` keeps beside the baseline file
(``baselines/host.json`` -> ``baselines/host.artifacts/<sha256>.tflite``), then among
the files next to the report (an unchanged file is its own baseline). Both run on
the device the report's target measured latency on: this machine for ``host``-like
targets, the board for SSH targets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DeviceError
from ..output import sha256_file
from .latency import AB_BLOCK_MS, AB_PAIRS
from .models import Artifact, Target

STORE_SUFFIX = ".artifacts"


def store_for(baseline: Path) -> Path:
    """The folder beside ``baseline`` where its artifacts are kept."""
    return baseline.with_name(baseline.stem + STORE_SUFFIX)


def stored_name(art: Artifact) -> str:
    return f"{art.sha256}{Path(art.file or art.name).suffix}"


class Remeasure:
    """Finds the two files of an artifact and times them A/B on the target's device."""

    def __init__(self, report_dir: Path | None, baseline: Path | None, *, enabled: bool = True,
                 pairs: int = AB_PAIRS, block_ms: float = AB_BLOCK_MS):
        self.report_dir = report_dir
        self.store = store_for(baseline) if baseline is not None else None
        self.enabled = enabled
        self.pairs = pairs
        self.block_ms = block_ms
        self._hashes: dict[Path, str] = {}

    def _sha(self, path: Path) -> str:
        if path not in self._hashes:
            self._hashes[path] = sha256_file(path)
        return self._hashes[path]

    def files(self, new: Artifact, old: Artifact) -> tuple[Path | None, Path | None, str]:
        """(report's file, baseline's file, how it was found) or Nones and why not."""
        if not self.enabled:
            return None, None, "A/B re-measurement turned off (--no-remeasure)"
        new_path, why = self._new_file(new)
        if new_path is None:
            return None, None, why
        old_path, how = self._baseline_file(old)
        return (new_path, old_path, how) if old_path is not None else (None, None, how)

    def _new_file(self, art: Artifact) -> tuple[Path | None, str]:
        if self.report_dir is None or not art.file:
            return None, "the report's artifact file is not known"
        path = self.report_dir / art.file
        if not path.is_file():
            return None, f"the report's artifact {path} is missing"
        if art.sha256 and self._sha(path) != art.sha256:
            return None, f"{path} is not the file the report measured (its sha256 differs)"
        return path, ""

    def _baseline_file(self, art: Artifact) -> tuple[Path | None, str]:
        if not art.sha256:
            return None, "the baseline records no sha256 for its artifact"
        suffix = Path(art.file or art.name).suffix
        if self.store is not None:
            path = self.store / stored_name(art)
            if path.is_file() and self._sha(path) == art.sha256:
                return path, f"kept in {self.store}"
        if self.report_dir is not None and self.report_dir.is_dir():
            for path in sorted(self.report_dir.glob(f"*{suffix}")):
                if path.is_file() and self._sha(path) == art.sha256:
                    return path, f"found by its sha256 next to the report ({path.name})"
        where = f"{self.store} nor next to the report" if self.store else "next to the report"
        return None, (f"the baseline's artifact (sha256 {art.sha256[:12]}...) is neither in "
                      f"{where}")

    def run(self, target: Target, fmt: str, old_path: Path, new_path: Path) -> dict:
        """Time the two files in alternating blocks; the runner's ``ab`` result."""
        from ..bench import input_shape_of
        from ..devices.base import AbRequest

        device, engine = _device(target, fmt)
        inputs = tuple(np.random.default_rng(0).random((1, *input_shape_of(p)), dtype=np.float32)
                       for p in (old_path, new_path))
        request = AbRequest(engine=engine, threads=target.threads, delegate=target.delegate,
                            pairs=self.pairs, block_ms=self.block_ms)
        try:
            return device.run_ab(old_path, new_path, inputs, request)
        except DeviceError as exc:
            raise DeviceError(f"A/B re-measurement of latency failed: {exc.what}",
                              where=exc.where, expected=exc.expected,
                              fix=f"{exc.fix + '; or ' if exc.fix else ''}pass --no-remeasure to "
                                  f"judge latency by the fallback rule") from None


def _device(target: Target, fmt: str):
    """The device and engine that timed ``latency_ms`` at export (see measure/artifacts.py)."""
    device = target.device if isinstance(target.device, dict) else {}
    kind = target.device_kind or device.get("kind") or "local"
    if kind == "ssh":
        from types import SimpleNamespace

        from ..config_io import validate_model
        from ..devices.ssh import SshDevice
        from ..recipe import _listify
        from ..targets import SshDevice as SshSpec

        spec = validate_model(SshSpec, _listify(device), source=f"target {target.name}: device")
        return SshDevice(SimpleNamespace(device=spec, name=target.name)), target.engine
    from ..devices.local import LocalDevice

    return LocalDevice(), ("onnxruntime" if fmt == "onnx" else "litert")
