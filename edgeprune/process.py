"""Which process owns a folder: ``PID-START`` tags in the names of a run's working folders.

START is the process's start time (clock ticks since boot, from ``/proc``), so a
tag stays tied to its run even after the PID is reused; where ``/proc`` is
missing it is 0 and only the PID is checked.
"""

from __future__ import annotations

import os
from functools import lru_cache


def _start_time(pid: int) -> int | None:
    """The start time of ``pid``: None if no such process, 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return 0
    try:
        return int(text[text.rindex(")") + 2:].split()[19])  # field 22 of proc(5)
    except (ValueError, IndexError):
        return 0


@lru_cache(maxsize=None)
def _own_tag(pid: int) -> str:
    return f"{pid}-{_start_time(pid) or 0}"


def owner_tag() -> str:
    """``PID-START`` of this process."""
    return _own_tag(os.getpid())


def tag_is_alive(tag: str) -> bool:
    """True while the process that wrote ``tag`` runs (False once it is gone or its PID reused)."""
    try:
        pid, start = (int(part) for part in tag.split("-"))
    except ValueError:
        return True  # not ours to judge: leave it alone
    if os.path.isdir("/proc/self"):
        now = _start_time(pid)
        return now is not None and (start == 0 or now == 0 or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
