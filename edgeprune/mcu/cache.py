"""Where the microcontroller build keeps its files: the same user cache as the emulated
boards (``$EDGEPRUNE_CACHE``, else the platform's user cache folder), with the same
rules: build in a temporary folder beside the final one, rename it into place when
complete, and hold a file lock meanwhile so that two processes do not build it twice.
"""

from __future__ import annotations

from pathlib import Path

from ..devices.qemu_root import _locked as locked          # noqa: F401  (re-exported)
from ..devices.qemu_root import _swap_into_place as swap_into_place  # noqa: F401
from ..devices.qemu_root import cache_dir


def cache_root() -> Path:
    return cache_dir()
