"""`--update-baseline`: bundles merged whole, samples thinned, artifacts kept beside the
baseline for A/B re-measurement (and pruned when no entry needs them)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from check_reports import ARTIFACTS, latency_figure, make_report, measurement, with_files
from tflite_chain import fc_chain

from edgeprune.check import check_reports, load_reports_file, write_baseline
from edgeprune.report.schema import SCHEMA_VERSION


def test_write_baseline_merges_targets_when_file_holds_another(tmp_path):
    path = tmp_path / "baselines" / "all.json"
    assert write_baseline(make_report(), path).targets == ["host"]
    assert load_reports_file(path)["target"]["name"] == "host"       # one target: a plain report
    assert write_baseline(make_report("rpi4"), path).targets == ["host", "rpi4"]
    assert sorted(load_reports_file(path)) == ["host", "rpi4"]
    newer = make_report("host", seed=9)
    written = write_baseline(newer, path)
    assert load_reports_file(path)["host"] == newer
    assert written.notes == ["the report's folder is not known: no artifact kept for A/B "
                             "re-measurement"]
    assert [p.name for p in path.parent.iterdir()] == ["all.json"]     # no temp file left


def test_write_baseline_replaces_entry_of_same_target_when_its_schema_is_old(tmp_path):
    path = tmp_path / "host.json"
    path.write_text(json.dumps({**make_report(), "schema_version": SCHEMA_VERSION - 1}))
    written = write_baseline(make_report(), path)
    assert load_reports_file(path) == make_report()
    assert "replaced entry 'host'" in written.notes[0]


def test_write_baseline_keeps_entries_of_a_list_bundle_under_their_names(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps([make_report("rpi4"), make_report("cortex-m4")]))
    write_baseline(make_report(), path)
    assert sorted(load_reports_file(path)) == ["cortex-m4", "host", "rpi4"]


def test_write_baseline_refuses_a_nameless_entry_it_would_lose(tmp_path):
    from edgeprune.errors import InputError

    path = tmp_path / "b.json"
    path.write_text(json.dumps([make_report("rpi4"), {"schema_version": 1}]))
    with pytest.raises(InputError, match=r"b.json\[1\]"):
        write_baseline(make_report(), path)


def test_write_baseline_thins_latency_samples_when_there_are_many(tmp_path):
    many = make_report()
    for i, art in enumerate(many["artifacts"][1:]):
        median = ARTIFACTS[art["name"]][3]
        art["measurements"]["latency_ms"] = latency_figure(median, seed=50 + i, n=20_000)
    path = tmp_path / "host.json"
    write_baseline(many, path, max_latency_samples=500)
    kept = measurement(load_reports_file(path), "int8.tflite", "latency_ms")
    full = measurement(many, "int8.tflite", "latency_ms")
    assert len(kept["samples"]) == 500 and kept["samples_thinned_from"] == 20_000
    assert np.median(kept["samples"]) == pytest.approx(np.median(full["samples"]), rel=2e-3)
    assert len(full["samples"]) == 20_000                # the caller's report is untouched
    assert check_reports(make_report(seed=8), load_reports_file(path)).passed


def test_write_baseline_keeps_gated_artifacts_beside_it_and_prunes_old_ones(tmp_path):
    small, big = (fc_chain(tmp_path / f"{n}.tflite", layers=n, width=8, inputs=8) for n in (1, 2))
    first = with_files(make_report(), tmp_path / "a", {"int8.tflite": small})
    board = with_files(make_report("rpi4"), tmp_path / "a", {"int8.tflite": small})
    path = tmp_path / "baselines" / "host.json"
    written = write_baseline(first, path, report_dir=tmp_path / "a")
    sha = first["artifacts"][1]["sha256"]
    store = tmp_path / "baselines" / "host.artifacts"
    assert written.artifacts == [str(store / f"{sha}.tflite")]
    assert (store / f"{sha}.tflite").read_bytes() == small.read_bytes()
    # an emulated board's latency is not gated: nothing to keep for it
    assert write_baseline(board, tmp_path / "b" / "rpi4.json",
                          report_dir=tmp_path / "a").artifacts == []
    second = with_files(make_report(), tmp_path / "c", {"int8.tflite": big})
    write_baseline(second, path, report_dir=tmp_path / "c")
    assert [p.name for p in store.iterdir()] == [f"{second['artifacts'][1]['sha256']}.tflite"]


def test_write_baseline_says_so_when_the_artifact_is_not_next_to_the_report(tmp_path):
    model = fc_chain(tmp_path / "m.tflite", layers=1, width=8, inputs=8)
    report = with_files(make_report(), tmp_path / "a", {"int8.tflite": model})
    (tmp_path / "a" / report["artifacts"][1]["file"]).write_bytes(b"changed since")
    written = write_baseline(report, tmp_path / "host.json", report_dir=tmp_path / "a")
    assert written.artifacts == [] and "fallback" in written.notes[0]
