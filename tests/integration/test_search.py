"""A real search: trials that are full exports of the digits reference model on this
machine, the chosen export reproduced byte for byte by `export --recipe`, a rerun that
costs nothing, and the same search run as Ray tasks on a Ray head started on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.pipeline import ExportOptions, run_export
from edgeprune.search.command import SearchOptions, run_search

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# This machine, with an accuracy budget one fine-tuning epoch meets.
TARGET = """
name = "host-search"
description = "this machine, LiteRT; a loose accuracy budget"
arch = "x86_64"
cpu = "x86-64"

[runtime]
engine = "litert"

[device]
kind = "local"

[recipe]
prune = { final_sparsity = 0.75 }
finetune = { epochs = 1 }
quantize = ["int8"]
formats = ["tflite"]

[budgets]
max_size_bytes = 100_000
max_accuracy_drop = 0.08
"""


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "host-search.toml"
    path.write_text(TARGET)
    return path


def test_search_exports_the_smallest_recipe_within_budgets_and_export_reproduces_it(target, tmp_path):
    logged: list[str] = []
    result = run_search(SearchOptions(target=str(target), out_dir=tmp_path, max_trials=2,
                                      finetune_epochs=1, log=logged.append))
    s = result.report["search"]
    assert [r["state"] for r in s["trials"]] == ["complete", "complete"]
    chosen = next(r for r in s["trials"] if r["number"] == s["chosen"]["trial"])
    meets = [r for r in s["trials"] if r["violation"] == 0]
    assert chosen["gzip_bytes"] == min(r["gzip_bytes"] for r in meets)
    assert result.report["verdict"] == "pass" and s["pareto"]["metric_vs_size"]
    assert any(line.startswith("trial 1 (2/2): ") and "best so far" in line for line in logged)
    folder = result.out_dir
    deployed = folder / result.report["artifacts"][-1]["file"]
    assert deployed.is_file() and (folder / "recipe.toml").is_file()
    assert {p.name for p in folder.iterdir()} >= {"report.json", "manifest.json", "recipe.toml"}
    # export --recipe recipe.toml --seed S makes the same deployed bytes
    again = run_export(ExportOptions(target=str(target), out_dir=tmp_path / "again",
                                     recipe=folder / "recipe.toml", seed=result.report["seed"]))
    assert (again.out_dir / deployed.name).read_bytes() == deployed.read_bytes()
    # a rerun, through the command line as a user types it, finds the study complete: no
    # trial runs (no export, no progress line), the same artifact comes out
    results = sorted((tmp_path / "host-search.search" / "trials").glob("*/result.json"))
    stamps = [p.stat().st_mtime_ns for p in results]
    proc = subprocess.run([sys.executable, "-m", "edgeprune", "search", "--target", str(target), "--out",
                           str(tmp_path), "--max-trials", "2", "--epochs", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "resuming study" in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("trial ")]
    assert "wrote " in proc.stdout and "chosen" in proc.stdout.lower(), proc.stdout
    assert [p.stat().st_mtime_ns for p in results] == stamps and len(results) == 2
    assert (result.out_dir / deployed.name).read_bytes() == deployed.read_bytes()


@pytest.fixture
def ray_head():
    """A Ray head on loopback with two CPUs (edgeprune/search/ray_local.py), stopped with
    its whole process group afterwards."""
    import ray  # noqa: F401  (a test dependency: missing, this fails rather than skips)

    from edgeprune.search.ray_local import loopback_head

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with loopback_head(2, env=env, timeout=90) as address:
        yield address


def test_search_runs_its_trials_as_ray_tasks_into_one_study(target, tmp_path, ray_head):
    result = run_search(SearchOptions(target=str(target), out_dir=tmp_path, max_trials=2, seed=0,
                                      finetune_epochs=1, workers=2, ray=ray_head, prune_trials=False))
    s = result.report["search"]
    assert s["engine"] == f"ray {ray_head}"
    assert [r["state"] for r in s["trials"]] == ["complete", "complete"]
    workers = {r["worker"] for r in s["trials"]}
    assert f"{socket.gethostname()}:{os.getpid()}" not in workers and len(workers) == 2
    assert not any(r["cached"] for r in s["trials"])
    report = json.loads((result.out_dir / "report.json").read_text())
    assert report["search"]["chosen"]["trial"] in (0, 1)
