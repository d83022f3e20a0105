"""A run's temporary files: one folder under the cache, removed on any exit.

The converters and runtimes edgeprune calls write temporary files (the TFLite
converter saves a SavedModel, the ONNX quantizer writes intermediate models,
autograph writes generated modules) into Python's and the C library's default
temporary folder. During a run that folder is ``$EDGEPRUNE_CACHE/tmp/run-PID-START-*``
(``tempfile.tempdir`` and ``TMPDIR`` both point at it), it is removed when the
run ends however it ends (after an interrupt that left a converter running in a
worker thread, a detached ``sh`` removes it the moment the process has exited),
and the folders of killed runs (whose process is gone) are removed by the next run.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ConfigError
from .process import owner_tag, tag_is_alive

_active: list[Path] = []
_RUN = re.compile(r"run-(\d+-\d+)-")


def temp_root() -> Path:
    from .reference import cache_dir

    return cache_dir() / "tmp"


@contextmanager
def run_tempdir() -> Iterator[Path]:
    """Point every temporary file of this process at a fresh folder for the duration."""
    if _active:  # nested: the outer run's folder serves
        yield _active[-1]
        return
    root = temp_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale_runs(root)
        path = Path(tempfile.mkdtemp(prefix=f"run-{owner_tag()}-", dir=root))
    except OSError as exc:
        raise ConfigError(f"cannot create a temporary folder ({exc.strerror})", where=str(root),
                          fix="set EDGEPRUNE_CACHE to a writable folder") from None
    saved_dir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(path)
    os.environ["TMPDIR"] = str(path)
    _active.append(path)
    try:
        yield path
    finally:
        _active.pop()
        from .interrupt import worker_busy

        if worker_busy():
            # interrupted: the worker (a converter, autograph) may still create temporary
            # files until the process exits, so the defaults keep pointing at this folder,
            # which is removed once the process has gone
            _remove_after_exit(path)
        else:
            tempfile.tempdir = saved_dir
            if saved_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved_env
            shutil.rmtree(path, ignore_errors=True)


def _remove_after_exit(path: Path) -> None:
    """Remove ``path`` as soon as this process has ended (a detached ``sh`` waits for it)."""
    import subprocess

    script = 'while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; rm -rf -- "$2"'
    try:
        subprocess.Popen(["sh", "-c", script, "sh", str(os.getpid()), str(path)], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        pass  # the next run removes it (its process is gone by then)


def clean_stale_runs(root: Path) -> list[Path]:
    """Remove the temporary folders of runs whose process is gone."""
    removed = []
    for path in sorted(root.iterdir()):
        match = _RUN.match(path.name)
        if match and not tag_is_alive(match.group(1)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def run_scoped(fn):
    """Decorator: ``fn`` runs inside :func:`run_tempdir`; a full disk anywhere is a ConfigError."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .output import disk_full, disk_full_error

        with run_tempdir() as path:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if disk_full(exc) and not isinstance(exc, ConfigError):
                    raise disk_full_error(path.parent, "temporary files") from None
                raise

    return wrapper
