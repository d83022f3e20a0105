"""Streamed data written once to disk and read back memory-mapped.

A loader's batches or decoded images are checked and hashed as they arrive and appended
to raw float files in a temporary folder (``$TMPDIR``), so a split never has to fit in
memory; the folder is removed when the last :class:`~edgeprune.types.Dataset` using it
is gone or the process ends.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np


class SpillFolder:
    """A temporary folder holding the arrays of one data set."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="edgeprune-data-")
        self.path = Path(self._tmp.name)
        self.digest = hashlib.sha256()

    def array(self, name: str) -> "SpillArray":
        return SpillArray(self.path / f"{name}.bin", self.digest)


class SpillArray:
    """Rows appended batch by batch; :meth:`close` returns the read-only memory map."""

    def __init__(self, path: Path, digest):
        self.path = path
        self._fh = path.open("wb")
        self._digest = digest
        self.rows = 0
        self.sample_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None

    def append(self, batch: np.ndarray) -> None:
        batch = np.ascontiguousarray(batch)
        if self.sample_shape is None:
            self.sample_shape, self.dtype = tuple(batch.shape[1:]), batch.dtype
        elif tuple(batch.shape[1:]) != self.sample_shape or batch.dtype != self.dtype:
            raise ValueError(f"a batch of shape {batch.shape} ({batch.dtype}) after batches of "
                             f"(N, {', '.join(map(str, self.sample_shape))}) ({self.dtype})")
        self._digest.update(str((batch.dtype.str, batch.shape)).encode())
        self._digest.update(batch.tobytes())
        self._fh.write(batch.tobytes())
        self.rows += len(batch)

    def close(self) -> np.ndarray:
        self._fh.close()
        if self.rows == 0:
            return np.zeros((0, *(self.sample_shape or ())), self.dtype or np.float32)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.rows, *self.sample_shape))
