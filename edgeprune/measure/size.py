"""Sizes of an artifact: raw bytes and gzip bytes (level 9, no timestamp: reproducible)."""

from __future__ import annotations

import gzip
from pathlib import Path


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def sizes(path: Path) -> dict[str, int]:
    data = Path(path).read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": gzip_size(data)}
