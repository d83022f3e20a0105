"""The pinned TensorFlow Lite Micro and CMSIS-NN sources, checked file by file.

``tflm_sources.json`` (next to this file) pins every source file the microcontroller
build may compile or include: its path in the build tree, the upstream repository it
comes from (tflite-micro, CMSIS-NN, CMSIS_6, flatbuffers, gemmlowp, ruy at the commits
TFLM pins) and its sha256. Two ways to get them, checked the same way:

- a local mirror (offline, CI): ``$EDGEPRUNE_TFLM_SOURCES`` names a ``tflm-src.tar.xz``
  made with TFLM's ``create_tflm_tree.py`` (or a folder holding the unpacked tree).
  Such a mirror has the CMSIS-NN kernels but not the reference versions of the
  kernels CMSIS-NN replaces (``group: reference`` in the lock).
- the upstream archives (a machine with internet, no mirror set): one archive per
  repository at its pinned commit, from ``$EDGEPRUNE_TFLM_UPSTREAM`` (default
  ``https://github.com``); flatbuffers gets TFLM's own patch, as TFLM's download
  script applies it. These have every file, the reference kernels included.

GitHub's archive bytes are not promised to be stable, so the check is on content:
every file used must have the pinned sha256, whichever way it came. The checked files
are unpacked once into the cache (``EDGEPRUNE_CACHE``), in a folder named by the
lock's digest, built in a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeviceError
from .cache import cache_root, locked, swap_into_place

LOCK_PATH = Path(__file__).with_name("tflm_sources.json")
SOURCES_ENV = "EDGEPRUNE_TFLM_SOURCES"
UPSTREAM_ENV = "EDGEPRUNE_TFLM_UPSTREAM"
DEFAULT_UPSTREAM = "https://github.com"
GROUPS = ("core", "reference")
DOWNLOAD_TIMEOUT_S = 120


@dataclass(frozen=True)
class SourceTree:
    """A checked tree: ``root`` holds the files of ``groups`` ("core", "reference")."""

    root: Path
    digest: str                  # of the lock: names the tree and keys every build from it
    groups: tuple[str, ...]
    origin: str                  # "mirror PATH" or "upstream URL"

    def has(self, group: str) -> bool:
        return group in self.groups


def load_lock() -> dict:
    return json.loads(LOCK_PATH.read_text())


def lock_digest(lock: dict | None = None) -> str:
    lock = lock or load_lock()
    text = json.dumps({"repos": lock["repos"], "files": lock["files"]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def files_of(lock: dict, group: str) -> dict[str, list]:
    return {p: e for p, e in lock["files"].items() if (e[2] if len(e) > 2 else "core") == group}


def source_tree(need: tuple[str, ...] = ("core",), log=lambda msg: None) -> SourceTree:
    """The checked tree with at least the groups in ``need``; fetched or unpacked once.

    Raises DeviceError (exit 4) when no source has them: no mirror and no internet, or
    a mirror without the reference kernels when ``need`` has "reference".
    """
    lock = load_lock()
    digest = lock_digest(lock)
    final = cache_root() / f"tflm-src-{digest[:16]}"
    tree = _complete(final, digest)
    if tree is not None and all(tree.has(g) for g in need):
        return tree
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(final.with_name(final.name + ".lock")):
        tree = _complete(final, digest)
        if tree is not None and all(tree.has(g) for g in need):
            return tree
        build = Path(tempfile.mkdtemp(prefix=f".build-{final.name}-", dir=final.parent))
        try:
            groups, origin = _populate(build / "tree", lock, need, log)
            (build / "tree.json").write_text(json.dumps(
                {"digest": digest, "groups": sorted(groups), "origin": origin}, indent=2))
            swap_into_place(build, final)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    tree = _complete(final, digest)
    assert tree is not None
    return tree


def _complete(folder: Path, digest: str) -> SourceTree | None:
    try:
        meta = json.loads((folder / "tree.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("digest") != digest:
        return None
    return SourceTree(folder / "tree", digest, tuple(meta["groups"]), meta["origin"])


def _populate(root: Path, lock: dict, need: tuple[str, ...], log) -> tuple[set[str], str]:
    mirror = os.environ.get(SOURCES_ENV)
    if mirror:
        groups = _from_mirror(Path(mirror).expanduser(), root, lock)
        missing = [g for g in need if g not in groups]
        if not missing:
            return groups, f"mirror {mirror}"
        absent = sorted(files_of(lock, missing[0]))
        raise DeviceError(
            f"the TFLM sources in the mirror lack the {missing[0]} kernels "
            f"({len(absent)} files: {', '.join(Path(p).name for p in absent)})",
            where=f"${SOURCES_ENV} = {mirror}",
            expected=f"every file of group {missing[0]!r} in {LOCK_PATH.name}, e.g. {absent[0]}",
            fix=f"on a machine with internet, unset {SOURCES_ENV}: edgeprune then fetches the "
                f"pinned upstream archives, which have them (or add those files, from tflite-micro "
                f"at {lock['repos']['tflite-micro']['ref'][:12]}, to the mirror's tree)")
    base = os.environ.get(UPSTREAM_ENV, DEFAULT_UPSTREAM).rstrip("/")
    log(f"fetching the pinned TFLM sources from {base}")
    _from_upstream(base, root, lock)
    return set(GROUPS), f"upstream {base}"


# --------------------------------------------------------------------------- the mirror


def _from_mirror(mirror: Path, root: Path, lock: dict) -> set[str]:
    """Copy every lock file the mirror has into ``root``, checked; the groups it completes."""
    wanted = lock["files"]
    found: dict[str, bytes] = {}
    if mirror.is_dir():
        base = mirror / "tflm-src" if (mirror / "tflm-src").is_dir() else mirror
        for rel in wanted:
            path = base / rel
            if path.is_file():
                found[rel] = path.read_bytes()
    elif mirror.is_file():
        try:
            with tarfile.open(mirror, "r:*") as tar:
                for member in tar:
                    rel = member.name.split("/", 1)[1] if "/" in member.name else ""
                    if member.isfile() and rel in wanted:
                        found[rel] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DeviceError(f"cannot read the TFLM source mirror: {exc}", where=str(mirror),
                              expected="tflm-src.tar.xz (a tar archive with a tflm-src/ folder)",
                              fix=f"point {SOURCES_ENV} at an intact copy") from None
    else:
        raise DeviceError("no such file or folder", where=f"${SOURCES_ENV} = {mirror}",
                          expected="the path of tflm-src.tar.xz, or of its unpacked folder",
                          fix=f"fix the path, or unset {SOURCES_ENV} to fetch the upstream archives")
    _write_checked(root, found, lock, where=str(mirror))
    return {g for g in GROUPS if all(p in found for p in files_of(lock, g))}


def _write_checked(root: Path, found: dict[str, bytes], lock: dict, where: str) -> None:
    bad = [rel for rel, data in found.items()
           if hashlib.sha256(data).hexdigest() != lock["files"][rel][1]]
    if bad:
        raise DeviceError(f"{len(bad)} TFLM source files differ from the pinned ones: "
                          f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}",
                          where=where, expected=f"the sha256 in {LOCK_PATH}",
                          fix="use the mirror made for this edgeprune version, or unset "
                              f"{SOURCES_ENV} to fetch the pinned upstream archives")
    if not all(p in found for p in files_of(lock, "core")):
        missing = sorted(p for p in files_of(lock, "core") if p not in found)
        raise DeviceError(f"{len(missing)} TFLM source files are missing, e.g. {missing[0]}",
                          where=where, expected="every core file of " + LOCK_PATH.name,
                          fix=f"point {SOURCES_ENV} at a complete tflm-src.tar.xz")
    for rel, data in found.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --------------------------------------------------------------------------- upstream


def _from_upstream(base: str, root: Path, lock: dict) -> None:
    found: dict[str, bytes] = {}
    for name, repo in lock["repos"].items():
        wanted = {p: e for p, e in lock["files"].items() if e[0] == name}
        if not wanted:
            continue
        url = f"{base}/{repo['github']}/archive/{repo['ref']}.tar.gz"
        data = _download(url)
        files = _unpack(data, url, {p[len(repo['prefix']):]: p for p in wanted})
        if repo.get("patch"):
            # the patch is a tflite-micro file, fetched (and checked) before: repos are in order
            patch_text = found[repo["patch"]]
            if hashlib.sha256(patch_text).hexdigest() != lock["files"][repo["patch"]][1]:
                raise DeviceError(f"{repo['patch']} differs from the pinned one", where=base,
                                  fix="the archive is not the pinned version; retry")
            files = _patched(files, patch_text, repo["prefix"], url)
        found.update(files)
    _write_checked(root, found, lock, where=base)


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            return resp.read()
    except (OSError, ValueError) as exc:
        raise DeviceError(
            f"could not download the pinned TFLM sources: {exc}", where=url,
            expected="internet access to the upstream archives, or a local mirror",
            fix=f"set {SOURCES_ENV} to a tflm-src.tar.xz mirror (CI: "
                "../shared/third_party/tflm-src.tar.xz), or {UPSTREAM_ENV} to a reachable "
                "GitHub mirror".replace("{UPSTREAM_ENV}", UPSTREAM_ENV)) from None


def _unpack(data: bytes, url: str, rename: dict[str, str]) -> dict[str, bytes]:
    """The members named in ``rename`` (path inside the repo -> path in the tree)."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                inner = member.name.split("/", 1)[1] if "/" in member.name else ""
                if member.isfile() and inner in rename:
                    out[rename[inner]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError) as exc:
        raise DeviceError(f"the downloaded archive is not a tar.gz: {exc}", where=url,
                          fix="retry; if it persists, use a local mirror") from None
    return out


def _patched(files: dict[str, bytes], patch: bytes, prefix: str, url: str) -> dict[str, bytes]:
    """Apply a ``git diff`` style patch (paths a/..., b/... relative to the repo) with patch(1)."""
    if shutil.which("patch") is None:
        raise DeviceError("patch is not installed", where="TFLM sources",
                          expected="patch(1), to apply TFLM's flatbuffers patch",
                          fix="apt-get install patch")
    with tempfile.TemporaryDirectory(prefix="edgeprune-patch-") as tmp:
        for rel, data in files.items():
            path = Path(tmp) / rel[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        proc = subprocess.run(["patch", "-p1", "--batch", "--quiet"], input=patch, cwd=tmp,
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise DeviceError(f"TFLM's patch does not apply: {proc.stdout.decode()[-300:]}",
                              where=url, fix="the archive is not the pinned version; retry")
        return {rel: (Path(tmp) / rel[len(prefix):]).read_bytes() for rel in files}


# --------------------------------------------------------------------------- the lock


def write_lock(tree: Path, repos: dict, groups: dict[str, str], out: Path = LOCK_PATH) -> None:
    """Pin the files of ``tree`` (a tree made as the mirror is, plus the reference kernels
    and the flatbuffers patch, named in ``groups`` as "reference" or "patch"; every other
    file is "core"): a maintainer's step when moving to a new TFLM commit."""
    prefixes = sorted(((r["prefix"], name) for name, r in repos.items()), reverse=True)
    files = {}
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = path.relative_to(tree).as_posix()
        repo = next((name for prefix, name in prefixes if rel.startswith(prefix)), None)
        if repo is None:
            continue
        entry = [repo, hashlib.sha256(path.read_bytes()).hexdigest()]
        if rel in groups:
            entry.append(groups[rel])
        files[rel] = entry
    doc = {"schema": "edgeprune.tflm-sources/1", "repos": repos, "files": files}
    lines = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in files.items())
    head = json.dumps({k: v for k, v in doc.items() if k != "files"}, indent=2)[:-2]
    out.write_text(head + ',\n  "files": {\n' + lines + "\n  }\n}\n")
