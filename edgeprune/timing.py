"""Seconds per pipeline stage, and the one-line summary the terminal shows at the end."""

from __future__ import annotations

import time
from contextlib import contextmanager


class StageClock:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, announce: bool = True):
        """Time a stage; while a progress reporter is active, announce it (edgeprune/progress.py)."""
        from .progress import stage

        started = time.perf_counter()
        try:
            if announce:
                with stage(name):
                    yield
            else:
                yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def summary(self) -> str:
        """``time by stage: compress 41.2s (62%), export 12.0s (18%), ...``, largest first."""
        total = sum(self.seconds.values()) or 1.0
        parts = [f"{name} {sec:.1f}s ({sec / total:.0%})"
                 for name, sec in sorted(self.seconds.items(), key=lambda kv: -kv[1])]
        return "time by stage: " + ", ".join(parts)
