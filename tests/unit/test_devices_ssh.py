"""A real board over SSH: a real sshd on 127.0.0.1 plays the board.

The fixture starts Debian's sshd (openssh-server) on a free port with a host key
and a client key made for the test, and the "board" runs the runner with this
interpreter (device.python = sys.executable), which has numpy and the runtimes.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from click.testing import CliRunner

from edgeprune.cli import cli
from edgeprune.devices import RunRequest, device_for
from edgeprune.devices.ssh import SshDevice
from edgeprune.errors import EXIT_BAD_INPUT, EXIT_DEVICE, ConfigError, DeviceError
from edgeprune.runtimes import runner
from edgeprune.targets import TargetProfile, load_target

pytestmark = pytest.mark.ssh

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeprune-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on 127.0.0.1:PORT accepting one client key; yields the folder with the keys."""
    if not Path(SSHD).is_file() or shutil.which("ssh") is None:
        pytest.fail("sshd or ssh is missing: apt-get install openssh-server openssh-client "
                    "(.ci/system-deps.sh does)")
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host_key")
    client_pub = _keygen(d / "client_key")
    _keygen(d / "stranger_key")
    (d / "authorized_keys").write_text(client_pub + "\n")
    (d / "authorized_keys").chmod(0o600)
    (d / "remote-tmp").mkdir()
    port = _free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n")
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers {getpass.getuser()}
SetEnv TMPDIR={d / 'remote-tmp'}
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder sshd wants as root
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {proc.communicate()[0]}")
            time.sleep(0.1)
    yield {"dir": d, "port": port}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _profile(sshd, **device) -> TargetProfile:
    d = sshd["dir"]
    spec = {"kind": "ssh", "host": "127.0.0.1", "port": sshd["port"], "user": getpass.getuser(),
            "identity_file": str(d / "client_key"), "python": sys.executable, "connect_timeout_s": 5,
            "run_timeout_s": 120,
            "ssh_options": (f"UserKnownHostsFile={d / 'known_hosts'}", "StrictHostKeyChecking=yes",
                            "LogLevel=ERROR")}
    spec.update(device)
    return TargetProfile.model_validate({
        "name": "loopback", "description": "this machine over ssh", "arch": "x86_64", "cpu": "x86-64",
        "runtime": {"engine": "litert", "threads": 1}, "device": spec})


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, keras):
    import edgeprune.keras_env as keras_env

    tf = keras_env.tf()
    keras_env.set_seed(0)
    model = keras.Sequential([keras.Input(shape=(16,)), keras.layers.Dense(10)])
    x = np.random.default_rng(1).normal(size=(32, 16)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path_factory.mktemp("ssh-model") / "int8.tflite"
    path.write_bytes(conv.convert())
    return path, x[:6]


def _remote_leftovers(sshd) -> list[Path]:
    return sorted((sshd["dir"] / "remote-tmp").iterdir())


@pytest.fixture
def remote_dirs(monkeypatch):
    """Every remote folder the device makes (they must lie in the sshd's TMPDIR)."""
    made = []
    original = SshDevice._make_remote_dir

    def spy(self, timeout):
        made.append(Path(original(self, timeout)))
        return str(made[-1])

    monkeypatch.setattr(SshDevice, "_make_remote_dir", spy)
    return made


def test_ssh_run_returns_outputs_equal_to_local_run(sshd, int8_model, remote_dirs):
    path, inputs = int8_model
    device = device_for(_profile(sshd))
    request = RunRequest(engine="litert", warmup=1, repeats=4)
    result = device.run(path, inputs, request)
    _, local = runner.run_job(request.to_json(path.name), inputs, str(path))
    assert isinstance(device, SshDevice)
    assert np.array_equal(result.outputs, local)
    assert len(result.latency_ms) == 4 and result.latency_is_meaningful
    assert result.runtime.startswith("ai_edge_litert") and result.where.startswith("ssh ")
    assert len(remote_dirs) == 1 and remote_dirs[0].parent == sshd["dir"] / "remote-tmp"
    assert not remote_dirs[0].exists() and _remote_leftovers(sshd) == []


def test_ssh_raises_device_error_when_port_unreachable(sshd, int8_model):
    path, inputs = int8_model
    device = SshDevice(_profile(sshd, port=_free_port()))
    with pytest.raises(DeviceError) as info:
        device.run(path, inputs, RunRequest(engine="litert", warmup=0, repeats=1))
    assert info.value.exit_code == EXIT_DEVICE
    assert "cannot connect" in str(info.value) and "device.host" in str(info.value)


def test_ssh_raises_device_error_when_key_not_authorized(sshd, int8_model):
    path, inputs = int8_model
    device = SshDevice(_profile(sshd, identity_file=str(sshd["dir"] / "stranger_key")))
    with pytest.raises(DeviceError, match="authentication failed") as info:
        device.run(path, inputs, RunRequest(engine="litert", warmup=0, repeats=1))
    assert info.value.exit_code == EXIT_DEVICE and "ssh-copy-id" in str(info.value)


def test_ssh_raises_device_error_and_cleans_up_when_board_lacks_numpy(sshd, int8_model, tmp_path,
                                                                      remote_dirs):
    path, inputs = int8_model
    bare = tmp_path / "python-bare"  # this interpreter without site-packages: no numpy
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(DeviceError, match="numpy is not importable") as info:
        SshDevice(_profile(sshd, python=str(bare))).run(path, inputs, RunRequest(engine="litert"))
    assert info.value.exit_code == EXIT_DEVICE and "device.python" in str(info.value)
    assert len(remote_dirs) == 1 and not remote_dirs[0].exists() and _remote_leftovers(sshd) == []


def test_ssh_profile_rejected_when_host_holds_semicolon(tmp_path):
    profile = tmp_path / "board.toml"
    profile.write_text('name = "board"\ndescription = "x"\narch = "aarch64"\ncpu = "cortex-a72"\n'
                       '[runtime]\nengine = "litert"\n'
                       '[device]\nkind = "ssh"\nhost = "pi@board;rm -rf ~"\n')
    with pytest.raises(ConfigError, match="device.host") as info:
        load_target(profile)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_ssh_command_quotes_every_remote_word(sshd):
    device = SshDevice(_profile(sshd))
    cmd = device.ssh_command(["rm", "-rf", "--", "/tmp/a b; touch /tmp/pwned"])
    assert cmd[-1] == "rm -rf -- '/tmp/a b; touch /tmp/pwned'"
    assert "BatchMode=yes" in cmd and "ConnectTimeout=5" in cmd
    assert cmd[cmd.index("-p") + 1] == str(sshd["port"])
    assert SshDevice(_profile(sshd, python="~/venv/bin/python"))._python_word() == '"$HOME"/venv/bin/python'


def _board_toml(path: Path, sshd, options: list[str], **device) -> Path:
    d = sshd["dir"]
    spec = {"kind": "ssh", "host": "127.0.0.1", "port": sshd["port"], "user": getpass.getuser(),
            "identity_file": str(d / "client_key"), "python": sys.executable, "connect_timeout_s": 5,
            "ssh_options": [f"UserKnownHostsFile={d / 'known_hosts'}", "StrictHostKeyChecking=yes",
                            *options]}
    spec.update(device)
    lines = [f"{k} = {v!r}".replace("'", '"') if not isinstance(v, (int, list)) else
             f"{k} = {v}".replace("'", '"') for k, v in spec.items()]
    path.write_text('description = "a board"\narch = "x86_64"\ncpu = "x86-64"\n'
                    '[runtime]\nengine = "litert"\n[device]\n' + "\n".join(lines) + "\n")
    return path


def _payload(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    script = tmp_path / "payload.sh"
    script.write_text(f"#!/bin/sh\necho ran > {marker}\nexit 1\n")
    script.chmod(0o755)
    return script, marker


def test_export_exits_2_and_never_runs_proxy_command_from_target_file(sshd, tmp_path):
    script, marker = _payload(tmp_path)
    board = _board_toml(tmp_path / "board.toml", sshd, [f"ProxyCommand={script}"])
    result = CliRunner().invoke(cli, ["export", "--target", str(board), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "ProxyCommand" in result.output and "~/.ssh/config" in result.output
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["proxycommand={script}", "LocalCommand={script}",
                                    "PermitLocalCommand=yes", "KnownHostsCommand={script}",
                                    "PKCS11Provider={script}", "Include={script}", "Match=exec",
                                    "ControlPath=/tmp/other-master", "ForwardAgent=yes",
                                    "SetEnv=LD_PRELOAD=/tmp/x.so", "UserKnownHostsFile=%d/x",
                                    "ProxyJump=jump$(touch)"])
def test_ssh_profile_refuses_option_that_could_run_code(sshd, tmp_path, option):
    script, marker = _payload(tmp_path)
    board = _board_toml(tmp_path / "board.toml", sshd, [option.format(script=script)])
    with pytest.raises(ConfigError, match="ssh_options") as info:
        load_target(board)
    assert info.value.exit_code == EXIT_BAD_INPUT and not marker.exists()


def test_ssh_profile_accepts_allowed_options_in_any_case(sshd, tmp_path):
    board = _board_toml(tmp_path / "board.toml", sshd, ["serveraliveinterval=5", "ProxyJump=pi@gw:2222"])
    assert load_target(board).device.ssh_options[-2:] == ("serveraliveinterval=5", "ProxyJump=pi@gw:2222")


def test_ssh_profile_refuses_python_that_is_not_a_python(sshd, tmp_path):
    board = _board_toml(tmp_path / "board.toml", sshd, [], python="/sbin/reboot")
    with pytest.raises(ConfigError, match="device.python"):
        load_target(board)


def test_ssh_preflight_reports_python_and_runtime(sshd):
    found = SshDevice(_profile(sshd)).preflight()
    assert found["runtime"] == "ai_edge_litert.interpreter" and "numpy" in found


def test_ssh_preflight_raises_device_error_when_board_lacks_numpy(sshd, tmp_path):
    bare = tmp_path / "python-bare"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(DeviceError, match="numpy is not importable"):
        SshDevice(_profile(sshd, python=str(bare))).preflight()


def test_export_exits_4_before_loading_the_model_when_board_unreachable(sshd, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the device was checked")

    monkeypatch.setattr("edgeprune.source.load_model_file", never)
    board = _board_toml(tmp_path / "board.toml", sshd, [], port=_free_port())
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d.npz"),
                                      "--target", str(board), "--out", str(tmp_path / "out")])
    assert result.exit_code == 4, result.output
    assert "cannot connect" in result.output and time.monotonic() - started < 20
    assert not (tmp_path / "out").exists()


def test_ssh_check_remeasures_latency_ab_on_the_board(sshd, tmp_path, remote_dirs):
    """`check` on an SSH target times the baseline's file and the report's on the board,
    in one runner process, and catches a file with 20% more work."""
    from check_reports import make_report, row, with_files
    from tflite_chain import fc_chain

    from edgeprune.check import Remeasure, check_reports, write_baseline

    old, new = (fc_chain(tmp_path / f"fc{n}.tflite", layers=n, width=128, inputs=128)
                for n in (10, 12))
    reports = []
    for name, path in (("old", old), ("new", new)):
        report = make_report(tolerances={})
        report["target"].update(name="loopback", device_kind="ssh",
                                device=_profile(sshd).device.model_dump(mode="json"))
        reports.append(with_files(report, tmp_path / name, {"int8.tflite": path}))
    baseline = tmp_path / "baselines" / "loopback.json"
    write_baseline(reports[0], baseline, report_dir=tmp_path / "old")
    result = check_reports(reports[1], reports[0],
                           remeasure=Remeasure(tmp_path / "new", baseline, pairs=12))
    r = row(result, "latency_ms", target="loopback")
    assert r.detail.startswith(f"A/B in this run on ssh {getpass.getuser()}@127.0.0.1"), r.detail
    assert r.verdict == "regressed", r.detail
    assert len(remote_dirs) == 1 and not remote_dirs[0].exists()


def test_ssh_check_exits_4_and_names_no_remeasure_when_board_unreachable(sshd, tmp_path):
    from check_reports import make_report, with_files
    from click.testing import CliRunner
    from tflite_chain import fc_chain

    from edgeprune.check import write_baseline
    from edgeprune.check_cli import check

    model = fc_chain(tmp_path / "m.tflite", layers=1, width=8, inputs=8)
    report = make_report()
    report["target"].update(name="loopback", device_kind="ssh", device=_profile(
        sshd, port=_free_port()).device.model_dump(mode="json"))
    report = with_files(report, tmp_path / "dist", {"int8.tflite": model})
    (tmp_path / "dist" / "report.json").write_text(json.dumps(report))
    write_baseline(report, tmp_path / "b.json", report_dir=tmp_path / "dist")
    out = CliRunner().invoke(check, [str(tmp_path / "dist" / "report.json"), "--baseline",
                                     str(tmp_path / "b.json")])
    assert out.exit_code == EXIT_DEVICE, out.output
    assert "A/B re-measurement of latency failed" in out.output and "--no-remeasure" in out.output
    fallback = CliRunner().invoke(check, [str(tmp_path / "dist" / "report.json"), "--baseline",
                                          str(tmp_path / "b.json"), "--no-remeasure"])
    assert fallback.exit_code == 0, fallback.output
