import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

import edgeprune.output as output
from edgeprune.errors import ConfigError
from edgeprune.output import check_replaceable, clean_stale, staged_dir, write_atomic

REPO = Path(__file__).resolve().parents[2]


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _previous(tmp_path: Path) -> Path:
    final = tmp_path / "host"
    final.mkdir()
    (final / "report.json").write_text("good")
    return final


def test_staged_dir_replaces_previous_output_on_success(tmp_path):
    final = _previous(tmp_path)
    with staged_dir(final) as staging:
        (staging / "new.txt").write_text("new")
    assert _entries(final) == ["new.txt"]
    assert _entries(tmp_path) == ["host"]


def test_staged_dir_exchanges_in_one_step_where_the_kernel_can(tmp_path, monkeypatch):
    calls = []
    original = output._exchange
    monkeypatch.setattr(output, "_exchange", lambda a, b: calls.append(original(a, b)) or calls[-1])
    final = _previous(tmp_path)
    with staged_dir(final) as staging:
        (staging / "new.txt").write_text("new")
    assert calls == [True] and _entries(final) == ["new.txt"] and _entries(tmp_path) == ["host"]


def test_staged_dir_keeps_previous_output_when_run_fails(tmp_path):
    final = _previous(tmp_path)
    with pytest.raises(RuntimeError):
        with staged_dir(final) as staging:
            (staging / "report.json").write_text("half")
            raise RuntimeError("stage failed")
    assert (final / "report.json").read_text() == "good"
    assert _entries(tmp_path) == ["host"]


def test_staged_dir_leaves_nothing_when_interrupted(tmp_path):
    final = tmp_path / "host"
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(final):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_rolls_back_when_second_rename_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "_exchange_supported", False)
    final = _previous(tmp_path)
    real_rename = os.rename

    def rename(src, dst):
        if ".partial-" in str(src):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_rename(src, dst)

    monkeypatch.setattr(output.os, "rename", rename)
    with pytest.raises(ConfigError, match="previous output is untouched"):
        with staged_dir(final) as staging:
            (staging / "report.json").write_text("new")
    assert (final / "report.json").read_text() == "good" and _entries(tmp_path) == ["host"]


def test_staged_dir_swaps_in_two_renames_without_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "_exchange_supported", False)
    final = _previous(tmp_path)
    with staged_dir(final) as staging:
        (staging / "report.json").write_text("new")
    assert (final / "report.json").read_text() == "new" and _entries(tmp_path) == ["host"]


def test_staged_dir_both_runs_end_cleanly_when_finishing_at_once(tmp_path):
    final = _previous(tmp_path)
    barrier = threading.Barrier(2)
    errors = []

    def run(tag):
        try:
            with staged_dir(final) as staging:
                (staging / "report.json").write_text(tag)
                barrier.wait(timeout=10)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert (final / "report.json").read_text() in ("a", "b") and _entries(tmp_path) == ["host"]


def test_clean_stale_removes_folders_of_dead_runs_only(tmp_path):
    final = _previous(tmp_path)
    dead = tmp_path / ".host.partial-999999999-1-abc"
    alive = tmp_path / f".host.partial-{os.getppid()}-0-xyz"
    other = tmp_path / ".other.partial-999999999-1-abc"
    for folder in (dead, alive, other):
        folder.mkdir()
    assert clean_stale(final) == [dead]
    assert _entries(tmp_path) == [alive.name, other.name, "host"]


def test_clean_stale_puts_back_previous_output_left_between_two_renames(tmp_path):
    final = tmp_path / "host"
    old = tmp_path / ".host.old-999999999-1-abc"
    old.mkdir()
    (old / "report.json").write_text("good")
    clean_stale(final)
    assert (final / "report.json").read_text() == "good" and _entries(tmp_path) == ["host"]


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import edgeprune.output as output
final = Path(sys.argv[1])
if sys.argv[2] == "between-renames":
    output._exchange_supported = False
    real = os.rename
    def rename(src, dst):
        real(src, dst)
        if ".old-" in str(dst):
            os.kill(os.getpid(), signal.SIGKILL)
    output.os.rename = rename
with output.staged_dir(final) as staging:
    (staging / "report.json").write_text("new")
    if sys.argv[2] == "while-writing":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["while-writing", "between-renames"])
def test_next_run_cleans_up_after_a_sigkilled_run(tmp_path, when):
    final = _previous(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(final), when],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    left = [name.split("-")[0] for name in _entries(tmp_path)]
    if when == "while-writing":
        assert left == [".host.partial", "host"]
    else:  # killed holding the lock, the previous output moved aside and not yet replaced
        assert left == [".host.lock", ".host.old", ".host.partial"]
    with staged_dir(final) as staging:
        (staging / "report.json").write_text("next")
    assert (final / "report.json").read_text() == "next" and _entries(tmp_path) == ["host"]


def _run_unprivileged(final: Path) -> tuple[int, str]:
    """The swap as an ordinary user (root may change any folder, so the checks need one): a
    forked child drops to nobody when the suite runs as root. Returns (exit code, message)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plain file operations only, then _exit
        code = 0
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            with staged_dir(final) as staging:
                (staging / "report.json").write_text("new")
        except ConfigError as exc:
            os.write(write, str(exc).encode())
            code = 2
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write, repr(exc).encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        message = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message


@pytest.fixture
def shared_dir():
    """A folder an unprivileged user can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="edgeprune-test-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    subprocess.run(["chmod", "-R", "u+w", str(folder)], check=False)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _give_to_runner(path: Path) -> None:
    if os.geteuid() == 0:
        for p in [path, *path.rglob("*")]:
            os.chown(p, 65534, 65534)


def test_staged_dir_exits_2_when_previous_output_is_read_only(shared_dir):
    parent = shared_dir / "out"
    parent.mkdir()
    final = _previous(parent)
    _give_to_runner(parent)
    final.chmod(0o555)
    code, message = _run_unprivileged(final)
    assert code == 2, message
    assert "cannot change" in message and "chmod -R u+w" in message
    assert (final / "report.json").read_text() == "good" and _entries(parent) == ["host"]


def test_staged_dir_exits_2_when_previous_output_belongs_to_another_user(shared_dir):
    if os.geteuid() != 0:
        pytest.fail("needs root to create a folder owned by another user (CI runs the suite as root)")
    parent = shared_dir / "out"
    parent.mkdir()
    parent.chmod(0o1777)  # sticky, like /tmp: only a folder's owner may rename it
    final = _previous(parent)  # owned by root
    code, message = _run_unprivileged(final)
    assert code == 2, message
    assert "another user" in message
    assert (final / "report.json").read_text() == "good" and _entries(parent) == ["host"]


def test_check_replaceable_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "host").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        check_replaceable(tmp_path / "host")


def test_write_atomic_writes_whole_file(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_atomic(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


@pytest.fixture
def small_disk(tmp_path):
    """A 4 KiB tmpfs where mounting is allowed (root in CI); None elsewhere."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mount)], capture_output=True)
    yield mount if done.returncode == 0 else None
    if done.returncode == 0:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_export_exits_2_when_disk_fills_while_writing_artifacts(mini_export, small_disk, monkeypatch):
    from click.testing import CliRunner

    from edgeprune.cli import cli

    args = list(mini_export["args"])
    out = small_disk / "out" if small_disk is not None else mini_export["out"]
    args[args.index("--out") + 1] = str(out)
    if small_disk is None:  # no tmpfs here: the same ENOSPC, raised where the staging is written
        real = Path.write_bytes

        def write_bytes(self, data):
            if ".partial-" in str(self):
                raise OSError(28, "No space left on device", str(self))
            return real(self, data)

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "no space left on device" in result.output and "Traceback" not in result.output
    assert not out.exists() or [p.name for p in out.iterdir()] == []
