"""200+ mutated model, recipe, target, data and report files through `export` and `check`:
every outcome is exit 0, 2, 3 or 4 without a traceback, the output folder is the previous
one intact or a complete new one, and no temporary file outlives its run."""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fuzzing import cases, export_args, make_base, run_case

from edgeprune.cli import cli

PER_KIND = {"recipe": 30, "target": 30, "data": 40, "model": 40, "check": 62}


@pytest.mark.slow
def test_fuzzed_inputs_exit_cleanly_and_leave_whole_outputs(tmp_path, keras, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(cache))
    base = make_base(tmp_path / "base", keras)
    first = CliRunner().invoke(cli, export_args(base))
    assert first.exit_code == 0, first.output
    made: list[str] = []
    original = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(original(*a, **k)) or made[-1])

    outcomes = [run_case(case, base) for case in cases(base, tmp_path / "base", PER_KIND, seed=12)]

    bad = [f"{o.case.kind} ({o.case.name}): exit {o.exit_code}, {o.message!r}, leftovers {o.leftovers}, "
           f"previous output intact {o.previous_intact}" for o in outcomes if not o.ok]
    assert not bad, "\n".join(bad)
    totals = collections.Counter(o.exit_code for o in outcomes)
    # most mutations are refused (a mutated note or sample in a report may still pass check)
    assert len(outcomes) >= 200 and totals[0] >= 1 and totals[2] >= 140, totals
    runs = {Path(p).relative_to(cache / "tmp").parts[0] for p in made if ".partial-" not in p
            and ".old-" not in p}
    assert runs and all(r.startswith("run-") for r in runs)   # converters' temp dirs included
    assert list((cache / "tmp").iterdir()) == []
