import pytest

from edgeprune.output import staged_dir, write_atomic


def test_staged_dir_replaces_previous_output_on_success(tmp_path):
    final = tmp_path / "host"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with staged_dir(final) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["host"]


def test_staged_dir_keeps_previous_output_when_run_fails(tmp_path):
    final = tmp_path / "host"
    final.mkdir()
    (final / "report.json").write_text("good")
    with pytest.raises(RuntimeError):
        with staged_dir(final) as staging:
            (staging / "report.json").write_text("half")
            raise RuntimeError("stage failed")
    assert (final / "report.json").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["host"]


def test_staged_dir_leaves_nothing_when_interrupted(tmp_path):
    final = tmp_path / "host"
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(final):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_writes_whole_file(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_atomic(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]
