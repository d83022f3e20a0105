"""Quiet runs: third-party log noise is captured, our own lines are not.

TensorFlow, absl, the CUDA stubs, the TFLite converter and XNNPACK write from native
code straight to file descriptors 1 and 2 ("failed call to cuInit", "fully_quantize:
0 ...", NodeDef warnings), where no Python logging setting reaches them. While
:func:`captured` is active, fds 1 and 2 point at a temporary file; edgeprune's own
lines go to :func:`console`, a stream on the original stderr. The captured text is
replayed when the run fails with a bug or a device error (it may say why), and never
captured at all with ``--verbose``.

Levels: ``normal`` (our progress lines and the result), ``quiet`` (the result and
errors only, for CI), ``verbose`` (everything, third-party lines included, live).
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, TextIO

import click

REPLAY_LINES = 200

_console: TextIO | None = None
_level = "normal"


def level() -> str:
    return _level


def console() -> TextIO:
    """Where edgeprune's own progress lines go: the terminal's stderr, even while captured."""
    return _console if _console is not None else sys.stderr


def say(msg: str) -> None:
    """Print one of our progress lines (nothing with ``--quiet``)."""
    if _level == "quiet":
        return
    stream = console()
    stream.write(msg + "\n")
    stream.flush()


def _real_fds() -> bool:
    """True when sys.stdout/sys.stderr are the process's fds 1 and 2 (not a test runner's buffers)."""
    try:
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def captured(verbose: bool = False, quiet: bool = False) -> Iterator[None]:
    """Capture fds 1 and 2 for the duration (unless ``verbose``); our lines go to :func:`console`."""
    global _console, _level
    previous = (_console, _level)
    _level = "verbose" if verbose else "quiet" if quiet else "normal"
    if verbose or not _real_fds() or _console is not None:
        try:
            yield
        finally:
            _console, _level = previous
        return
    sys.stdout.flush()
    sys.stderr.flush()
    sink = _sink()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    _console = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                         errors="replace")
    os.dup2(sink.fileno(), 1)
    os.dup2(sink.fileno(), 2)
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        _console.close()
        _console, _level = previous
        if failure is not None and _worth_replaying(failure):
            _replay(sink)
        sink.close()


def _sink():
    """An anonymous in-memory file (no name anywhere; tempfile's folder choice left untouched:
    a run points it at its own folder, edgeprune/tempdirs.py)."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("edgeprune-captured"), "w+b")
    return tempfile.TemporaryFile()


def _worth_replaying(exc: BaseException) -> bool:
    """A bug or an unreachable device may be explained by the library's own lines; a
    bad input (exit 2) or a finished verdict is explained by our message alone."""
    from .errors import DeviceError, EdgepruneError

    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return False
    return not isinstance(exc, EdgepruneError) or isinstance(exc, DeviceError)


def _replay(sink) -> None:
    sink.seek(0)
    lines = sink.read().decode("utf-8", "replace").splitlines()
    if not lines:
        return
    shown = lines[-REPLAY_LINES:]
    head = f" (last {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
    sys.stderr.write(f"--- third-party output captured during the run{head}; --verbose shows it live ---\n")
    sys.stderr.write("\n".join(shown) + "\n---\n")
    sys.stderr.flush()


def verbosity_options(command):
    """``--verbose`` and ``--quiet``, for a command that runs the libraries."""
    command = click.option("--quiet", "-q", is_flag=True,
                           help="Print only the result (table or JSON) and errors: for CI logs.")(command)
    return click.option("--verbose", "-v", is_flag=True,
                        help="Also show the libraries' own log lines (TensorFlow, converters) as they "
                             "come; by default they are kept back and shown only if the run fails.")(command)


@contextmanager
def session(verbose: bool, quiet: bool, log=None):
    """Third-party output captured (unless ``verbose``); yields the progress ``log`` callable
    (edgeprune/progress.py), which is also what fine-tuning reports its epochs to."""
    from .errors import ConfigError
    from .progress import Reporter, activate

    if verbose and quiet:
        raise ConfigError("--verbose and --quiet contradict each other", where="--verbose/--quiet",
                          fix="pass one of them")
    with captured(verbose=verbose, quiet=quiet), activate(Reporter(sink=log)) as reporter:
        yield reporter
