"""Atomic output directories: a run builds its output beside the destination and
swaps it in only when complete, so the destination always holds either the
previous output, intact, or the new one, complete; never neither.

The swap, for ``OUT/TARGET``:

1. before any work, :func:`check_replaceable` makes sure the previous output can
   be replaced and removed (a read-only folder in it, or one owned by another
   user in a sticky directory, is a ConfigError, exit 2, with nothing touched);
2. the run writes ``OUT/.TARGET.partial-PID-START-RANDOM/`` (PID and START, the
   process's start time, say which run owns it);
3. under an exclusive lock on ``OUT/.TARGET.lock`` (so two runs finishing at the
   same moment take turns; the file exists only while the lock is held), folders of dead runs are cleaned up, then the new
   folder is exchanged with the old in one step (Linux ``renameat2`` with
   ``RENAME_EXCHANGE``), or, where the kernel or file system has no exchange,
   renamed in two steps with a rollback if the second fails;
4. the old output, now under the partial name, is removed.

A run killed at any point leaves at most its own ``.TARGET.partial-*`` or
``.TARGET.old-*`` folder; the next run removes it (and puts an ``.old-*`` folder
back if the kill fell between the two renames).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ConfigError
from .process import owner_tag, tag_is_alive

LOCK_WAIT_S = 600.0
_EXCHANGE_ERRNOS = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
_exchange_supported = sys.platform.startswith("linux")


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on normal exit it replaces ``final``."""
    final = Path(final)
    check_replaceable(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with _locked(final):
            clean_stale(final)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{owner_tag()}-", dir=final.parent))
    except OSError as exc:
        raise ConfigError(f"cannot create the output directory ({exc.strerror})", where=str(final.parent),
                          fix="choose a writable --out directory") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        yield staging
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if disk_full(exc):
            raise disk_full_error(final) from None
        raise
    try:
        with _locked(final):
            swap_in(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if disk_full(exc):
            raise disk_full_error(final) from None
        raise ConfigError(f"could not swap the new output in ({exc.strerror or exc}); the previous "
                          "output is untouched", where=str(final),
                          fix="check the permissions of the folder and its parent, or choose another --out") from None


def check_replaceable(final: Path) -> None:
    """Raise ConfigError unless ``final`` can be created, or replaced and its old contents removed."""
    final = Path(final)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ConfigError("exists and is not a directory", where=str(final),
                          fix="choose another --out, or remove it")
    parent = final.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError("this folder is not writable", where=str(parent),
                          fix="choose a writable --out directory")
    if not final.exists():
        return
    pst, fst = final.parent.stat(), final.stat()
    if pst.st_mode & stat.S_ISVTX and os.geteuid() not in (0, fst.st_uid, pst.st_uid):
        raise ConfigError("the previous output belongs to another user, in a folder where only its "
                          "owner may rename it", where=str(final),
                          fix="ask its owner to remove it, or choose another --out")
    for folder, _dirs, _files in os.walk(final):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"the previous output holds a folder this user cannot change ({folder}), "
                              "so it could not be removed after the new output is in place",
                              where=str(final), fix=f"make it writable (chmod -R u+w {final}), remove "
                                                    "it, or choose another --out")


def swap_in(staging: Path, final: Path) -> None:
    """Put ``staging`` at ``final`` (held lock assumed); the previous output is removed after."""
    if not os.path.lexists(final):
        os.rename(staging, final)
        return
    if _exchange(staging, final):
        _remove(staging)  # the old output now lives at the staging path
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{owner_tag()}-", dir=final.parent))
    os.rmdir(old)
    os.rename(final, old)
    try:
        os.rename(staging, final)
    except BaseException:
        os.rename(old, final)  # roll back: the previous output is back in place
        raise
    _remove(old)


def clean_stale(final: Path) -> list[Path]:
    """Remove the partial and old folders of dead runs beside ``final`` (lock held); an old folder
    left between the two renames of a killed run is put back first. Returns what was removed."""
    pattern = re.compile(re.escape(f".{final.name}.") + r"(partial|old)-(\d+-\d+)-")
    removed = []
    for path in sorted(final.parent.iterdir()):
        match = pattern.match(path.name)
        if not match or tag_is_alive(match.group(2)):
            continue
        if match.group(1) == "old" and not os.path.lexists(final):
            os.rename(path, final)
            continue
        _remove(path)
        removed.append(path)
    return removed


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not _exchange_supported:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc older than 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in _EXCHANGE_ERRNOS:
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextmanager
def _locked(final: Path) -> Iterator[None]:
    """An exclusive flock on ``.NAME.lock`` beside ``final``, removed again when released (a
    waiter that wakes on a removed file's lock retries on the new one)."""
    import fcntl

    path = final.parent / f".{final.name}.lock"
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise ConfigError(f"another run has held {path.name} for {LOCK_WAIT_S:.0f}s",
                                      where=str(path), fix="wait for the other run, or choose another --out")
                time.sleep(0.02)
        try:
            held = os.fstat(fd)
            current = os.stat(path)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was removed by the previous holder: lock the new one
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` or anything that caused it is a full disk or an exhausted quota."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(where: Path, writing: str = "the output") -> ConfigError:
    return ConfigError(f"the disk is full (no space left on device) while writing {writing}; "
                       "the previous output is untouched", where=str(where),
                       fix="free some space, or choose another --out (and EDGEPRUNE_CACHE) on a "
                           "disk with room")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a single file atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
