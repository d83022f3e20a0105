"""The defects of `edgeprune check` and `--update-baseline` found by trying it as a user
would, each through the command line, as a user meets it."""

from __future__ import annotations

import copy
import json
import os

import pytest
from check_reports import make_report, measurement, with_files
from click.testing import CliRunner
from tflite_chain import fc_chain

from edgeprune.check_cli import check
from edgeprune.report.schema import SCHEMA_VERSION


def run(*args):
    return CliRunner().invoke(check, [str(a) for a in args])


@pytest.fixture
def write(tmp_path):
    def write(name: str, data) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data) if not isinstance(data, str) else data)
        return str(path)
    return write


# ------------------------------------------------------------------ noise is not a regression


def test_check_exits_0_when_identical_file_was_measured_under_another_load(tmp_path):
    """The same .tflite, exported twice: the second run's samples 66% slower (a busy
    machine). The latency is re-measured A/B in the check, so nothing regressed."""
    model = fc_chain(tmp_path / "m.tflite", layers=4, width=64, inputs=64)
    first = with_files(make_report(), tmp_path / "a", {"int8.tflite": model})
    second = with_files(make_report(seed=3, load=1.66), tmp_path / "b", {"int8.tflite": model})
    (tmp_path / "a" / "report.json").write_text(json.dumps(first))
    (tmp_path / "b" / "report.json").write_text(json.dumps(second))
    baseline = tmp_path / "baselines" / "host.json"
    assert run(tmp_path / "a" / "report.json", "--baseline", baseline,
               "--update-baseline").exit_code == 0
    out = run(tmp_path / "b" / "report.json", "--baseline", baseline, "--all")
    assert out.exit_code == 0, out.output
    assert "A/B" in out.output and "REGRESSED" not in out.output


def test_check_exits_0_when_host_time_of_an_emulated_board_doubled(write):
    """rpi4's report carries this machine's time, which says nothing about the board."""
    def legacy(report):   # as reports were written before host_latency_ms existed
        for art in report["artifacts"][1:]:
            fig = art["measurements"].pop("host_latency_ms")
            fig["by"] += " (this machine, not the target)"
            art["measurements"]["latency_ms"] = fig
        return report

    base, rerun = legacy(make_report("rpi4")), legacy(make_report("rpi4", seed=2, load=2.0))
    out = run(write("r.json", rerun), "--baseline", write("b.json", base))
    assert out.exit_code == 0, out.output


# ------------------------------------------------------------------ --update-baseline validates


def test_update_baseline_exits_2_when_latency_samples_are_strings(write, tmp_path):
    bad = make_report()
    lat = measurement(bad, "int8.tflite", "latency_ms")
    lat["samples"] = [str(s) for s in lat["samples"]]
    out = run(write("r.json", bad), "--baseline", tmp_path / "b.json", "--update-baseline")
    assert out.exit_code == 2, out.output
    assert "latency_ms.samples[0]" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("damage", [
    lambda r: r.update(artifacts=[1, 2]),
    lambda r: r["artifacts"][2].update(measurements="fast"),
    lambda r: r["artifacts"][2]["measurements"].update(size_bytes=[14_876]),
], ids=["artifacts", "measurements", "figure"])
def test_update_baseline_exits_2_when_report_is_malformed(write, tmp_path, damage):
    bad = make_report()
    damage(bad)
    out = run(write("r.json", bad), "--baseline", tmp_path / "b.json", "--update-baseline")
    assert out.exit_code == 2, out.output
    assert out.output.startswith("error: ") and "r.json" in out.output
    assert not (tmp_path / "b.json").exists()


# ------------------------------------------------------------------ bundles stay whole


@pytest.mark.parametrize("entry", [
    {**make_report("rpi4"), "schema_version": SCHEMA_VERSION + 1, "artifacts": {"new": "shape"}},
    {**make_report("rpi4"), "artifacts": "damaged"},
], ids=["newer-schema", "damaged"])
def test_update_baseline_keeps_another_targets_entry_when_it_cannot_read_it(write, entry):
    bundle = {"host": make_report(), "rpi4": entry}
    path = write("baselines.json", bundle)
    out = run(write("r.json", make_report(seed=4)), "--baseline", path, "--update-baseline")
    assert out.exit_code == 0, out.output
    written = json.loads(open(path).read())
    assert written["rpi4"] == entry and written["host"] == make_report(seed=4)
    assert "kept entry 'rpi4'" in out.output


def test_update_baseline_refuses_to_downgrade_a_newer_entry_of_the_same_target(write):
    newer = {**make_report(), "schema_version": SCHEMA_VERSION + 1}
    path = write("baselines.json", {"host": newer, "rpi4": make_report("rpi4")})
    before = open(path).read()
    out = run(write("r.json", make_report(seed=4)), "--baseline", path, "--update-baseline")
    assert out.exit_code == 2, out.output
    assert "['host']" in out.output and "downgrade" in out.output
    assert open(path).read() == before


def test_update_baseline_refuses_to_replace_a_file_it_cannot_read(write):
    path = write("baselines.json", '{"host": {"schema_version": 1, ')   # cut short
    out = run(write("r.json", make_report()), "--baseline", path, "--update-baseline")
    assert out.exit_code == 2 and "not replaced" in out.output
    assert open(path).read() == '{"host": {"schema_version": 1, '


def test_update_baseline_leaves_old_file_whole_when_the_write_fails(write, monkeypatch):
    path = write("b.json", make_report())
    before = open(path).read()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    out = run(write("r.json", make_report(seed=5)), "--baseline", path, "--update-baseline")
    assert out.exit_code != 0
    assert open(path).read() == before
    assert sorted(os.listdir(os.path.dirname(path))) == ["b.json", "r.json"]


# ------------------------------------------------------------------ empty samples, names, types


def test_check_exits_2_when_report_latency_samples_are_empty(write):
    empty = make_report()
    measurement(empty, "int8.tflite", "latency_ms")["samples"] = []
    out = run(write("r.json", empty), "--baseline", write("b.json", make_report()))
    assert out.exit_code == 2, out.output
    assert "r.json: artifact 'int8.tflite': measurements.latency_ms.samples" in out.output


def test_check_exits_2_when_baseline_latency_samples_are_empty(write):
    empty = make_report()
    measurement(empty, "int8.tflite", "latency_ms")["samples"] = []
    out = run(write("r.json", make_report()), "--baseline", write("b.json", empty))
    assert out.exit_code == 2, out.output
    assert "b.json: artifact 'int8.tflite'" in out.output


def test_check_names_the_baseline_file_when_the_baseline_is_malformed(write):
    bad = make_report()
    measurement(bad, "int8.tflite", "size_bytes")["value"] = "14k"
    out = run(write("report.json", make_report()), "--baseline", write("base.json", bad))
    assert out.exit_code == 2, out.output
    first = out.output.splitlines()[0]
    assert "base.json" in first and "report.json" not in first


@pytest.mark.parametrize("side", ["report", "baseline"])
def test_check_exits_2_when_schema_version_is_true(write, side):
    files = {"report": make_report(), "baseline": make_report()}
    files[side] = {**files[side], "schema_version": True}
    out = run(write("r.json", files["report"]), "--baseline", write("b.json", files["baseline"]))
    assert out.exit_code == 2, out.output
    assert "schema_version is True" in out.output


def test_check_exits_2_when_update_baseline_wrote_nothing_check_would_refuse(write, tmp_path):
    """One validation path: whatever --update-baseline accepts, check reads."""
    report = make_report()
    measurement(report, "int8.tflite", "latency_ms")["samples"][3] = 0.5    # a plain number
    path = tmp_path / "b.json"
    assert run(write("r.json", report), "--baseline", path, "--update-baseline").exit_code == 0
    rerun = copy.deepcopy(report)
    assert run(write("r2.json", rerun), "--baseline", path).exit_code == 0
