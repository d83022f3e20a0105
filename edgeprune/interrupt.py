"""Honouring SIGTERM and Ctrl-C within a fraction of a second, even inside long C calls.

Python runs signal handlers only in the main thread, between bytecodes: while
the main thread is inside a long C call (the TFLite converter can take tens of
seconds) a SIGTERM waits for it to return. :func:`call_interruptibly` runs such
a call in a worker thread while the main thread waits in short timeouts, so the
handler runs at once; the interrupt then unwinds the main thread (staging and
temporary folders are removed on the way out) and the command exits without
waiting for the worker (see :func:`exit_if_interrupted`); a temporary folder the
worker may still be writing is removed just after the process ends
(:mod:`edgeprune.tempdirs`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, TypeVar

T = TypeVar("T")
WORKER_NAME = "edgeprune-worker"
POLL_S = 0.05
received: list[int] = []   # the signals that interrupted this process


def call_interruptibly(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread; the calling (main) thread stays responsive."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    outcome: dict = {}

    def work():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller as it is
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=WORKER_NAME, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(POLL_S)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _handle(signum, frame):
    if received:  # a second signal while cleaning up: stop now (the next run removes what is left)
        os._exit(128 + received[0])
    received.append(signum)
    raise KeyboardInterrupt


def install_handlers() -> None:
    """SIGTERM (and SIGINT) unwind the main thread like Ctrl-C: staging and temporary folders
    are removed on the way out. A second signal ends the process at once; what it leaves is
    removed by the next run."""
    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)


def exit_code() -> int:
    """128 + the signal number, as shells report it (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + (received[0] if received else signal.SIGINT)


def worker_busy() -> bool:
    """True while a worker started by :func:`call_interruptibly` is still inside its call."""
    return any(t.name == WORKER_NAME and t.is_alive() for t in threading.enumerate())


def exit_if_interrupted(code: int) -> None:
    """After an interrupt (cleanup done), end the process at once: a worker may still be inside
    a C call, and TensorFlow's teardown at a normal exit takes seconds or aborts with one."""
    if received:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
