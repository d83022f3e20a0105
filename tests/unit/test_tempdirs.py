"""A run's temporary files live in one folder under the cache and never outlive it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from edgeprune.tempdirs import clean_stale_runs, run_tempdir


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_run_tempdir_points_tempfile_and_tmpdir_inside_and_removes_it(cache):
    before = tempfile.gettempdir(), os.environ.get("TMPDIR")
    with run_tempdir() as path:
        assert tempfile.gettempdir() == str(path) and os.environ["TMPDIR"] == str(path)
        assert path.parent == cache / "tmp"
        Path(tempfile.mkdtemp()).joinpath("x").write_text("x")
    assert not path.exists() and (tempfile.gettempdir(), os.environ.get("TMPDIR")) == before


def test_run_tempdir_removes_folder_when_interrupted(cache):
    with pytest.raises(KeyboardInterrupt):
        with run_tempdir() as path:
            raise KeyboardInterrupt
    assert not path.exists()


def test_clean_stale_runs_removes_folders_of_dead_processes_only(cache):
    root = cache / "tmp"
    dead, alive = root / "run-999999999-1-abc", root / f"run-{os.getppid()}-0-abc"
    for folder in (dead, alive):
        folder.mkdir(parents=True)
    assert clean_stale_runs(root) == [dead] and alive.is_dir()
