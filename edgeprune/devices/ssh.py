"""Run on a real board over SSH, with the system's OpenSSH client.

Using ``ssh``/``scp`` (not a Python SSH library) means the user's
``~/.ssh/config``, keys, agent and jump hosts work as they do in a terminal.
Every call is an argument list (never a shell on this side), BatchMode is on
(no password prompts: a key must be set up), and every command string sent to
the remote shell is built from ``shlex.quote``-d parts, so profile values
cannot inject shell syntax (the schema also rejects shell characters).

One run: ``mktemp -d`` on the board, copy the runner and the job there, run
``PYTHON runner.py JOBDIR`` with the profile's timeout, copy ``outputs.npy``
back, and always remove the remote folder.

Before any work, :meth:`SshDevice.preflight` connects once and checks that the
board's Python imports numpy and the target's runtime, so an unreachable or
unprepared board fails in seconds rather than after fine-tuning and export.
Option values from the profile are checked against an allow-list
(:mod:`edgeprune.devices.ssh_options`): no profile can make ssh run a local
program.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DeviceError, UnsupportedError
from ..runtimes import runner
from .base import AbRequest, RunRequest, RunResult, run_result
from .job import op_rows, write_ab_job, write_job

# ssh exits 255 when the connection or authentication failed
_SSH_FAILED = 255
# ONNX Runtime 1.2x+ writes telemetry files under ~/.cache/Microsoft unless told not to
_REMOTE_ENV = "ORT_DISABLE_TELEMETRY=1"
# What the pre-flight runs on the board: the imports the runner will need, as JSON.
_PREFLIGHT = """\
import json, sys
out = {"python": sys.version.split()[0]}
if sys.version_info < (3, 9):
    out["error"] = "Python %s is older than 3.9" % out["python"]
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception as exc:
    out.setdefault("error", "numpy is not importable: %s" % exc)
errors = []
for name in MODULES:
    try:
        __import__(name)
        out["runtime"] = name
        break
    except Exception as exc:
        errors.append("%s: %s" % (name, exc))
else:
    out.setdefault("error", "no runtime importable: " + "; ".join(errors))
print(json.dumps(out))
"""
_RUNTIME_MODULES = {"litert": ["ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"],
                    "onnxruntime": ["onnxruntime"]}


class SshDevice:
    kind = "ssh"

    def __init__(self, profile):
        self.profile = profile
        self.device = profile.device

    def describe(self) -> str:
        return f"ssh {self.destination}" + (f":{self.device.port}" if self.device.port else "")

    @property
    def destination(self) -> str:
        host = self.device.host
        return f"{self.device.user}@{host}" if self.device.user and "@" not in host else host

    # ------------------------------------------------------------------ ssh and scp

    def _options(self, port_flag: str) -> list[str]:
        d = self.device
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={d.connect_timeout_s}"]
        if d.port:
            opts += [port_flag, str(d.port)]
        if d.identity_file:
            opts += ["-i", str(Path(d.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        for option in d.ssh_options:
            opts += ["-o", option]
        return opts

    def ssh_command(self, remote: list[str]) -> list[str]:
        """``ssh ... -- DEST 'quoted command'``: the remote shell sees only quoted words."""
        return self._ssh_line(" ".join(shlex.quote(word) for word in remote))

    def _ssh_line(self, line: str) -> list[str]:
        return ["ssh", *self._options("-p"), "--", self.destination, line]

    def _python_word(self) -> str:
        """device.python for the remote shell: quoted, with a leading ``~/`` kept working."""
        python = self.device.python
        if python.startswith("~/"):
            return '"$HOME"/' + shlex.quote(python[2:])
        return shlex.quote(python)

    def scp_command(self, sources: list[str], target: str) -> list[str]:
        return ["scp", "-q", "-B", *self._options("-P"), "--", *sources, target]

    def _remote_path(self, path: str) -> str:
        # scp (SFTP mode, OpenSSH 9) takes the path literally; legacy mode would glob it,
        # but it is a mktemp name we checked to be plain.
        return f"{self.destination}:{path}"

    def _call(self, cmd: list[str], *, what: str, timeout: float,
              check: bool = False) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise DeviceError(f"{cmd[0]} is not installed", where="ssh device",
                              fix="apt-get install openssh-client") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{what} took longer than {timeout:.0f}s", where=self.describe(),
                              fix="raise device.run_timeout_s in the target profile, or use fewer "
                                  "inputs and repeats") from None
        if proc.returncode == _SSH_FAILED:
            raise self._connection_error(proc.stderr, what)
        if check and proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise DeviceError(f"{what} failed (exit {proc.returncode}): {detail}",
                              where=self.describe(),
                              fix="check free space in the board's temporary folder and that its "
                                  "sshd offers SFTP (OpenSSH's scp uses it)")
        return proc

    def _connection_error(self, stderr: str, what: str) -> DeviceError:
        message = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
        lowered = stderr.lower()
        if "permission denied" in lowered or "too many authentication failures" in lowered:
            fix = ("set up key authentication: ssh-copy-id " + self.destination +
                   " (or set device.identity_file); BatchMode never asks for a password")
            problem = "authentication failed"
        elif "host key verification failed" in lowered:
            fix = f"connect once by hand (ssh {self.destination}) to accept the host key"
            problem = "the host key is not known"
        else:
            fix = ("check that the board is on and reachable, device.host and device.port, and "
                   f"`ssh {self.destination} true` in a terminal")
            problem = "cannot connect"
        return DeviceError(f"{problem} during {what}: {message}", where=self.describe(),
                           expected="a host reachable with ssh key authentication", fix=fix)

    # ------------------------------------------------------------------ pre-flight

    def preflight(self) -> dict:
        """Connect once and check the board's Python, numpy and runtime; seconds, before any work."""
        modules = _RUNTIME_MODULES.get(self.profile.runtime.engine, [])
        code = _PREFLIGHT.replace("MODULES", repr(modules))
        line = f"{_REMOTE_ENV} {self._python_word()} -c {shlex.quote(code)}"
        proc = self._call(self._ssh_line(line), what="the pre-flight check of the board",
                          timeout=float(self.device.connect_timeout_s) + 30.0)
        found = None
        for text in reversed(proc.stdout.strip().splitlines()):
            try:
                found = json.loads(text)
                break
            except ValueError:
                continue
        python = self.device.python
        if not isinstance(found, dict):
            detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DeviceError(f"{python} did not run on the board (exit {proc.returncode}): {detail}",
                              where=f"{self.describe()}: device.python",
                              expected="Python 3.9 or newer with numpy",
                              fix="install Python 3 and numpy on the board, or point device.python at "
                                  "the right interpreter")
        if "error" in found:
            raise DeviceError(found["error"], where=f"{self.describe()}: device.python = {python}",
                              expected="Python 3.9+, numpy and the runtime importable by that python",
                              fix=f"on the board: {python} -m pip install numpy ai-edge-litert "
                                  "(or onnxruntime, or tflite-runtime)")
        return found

    # ------------------------------------------------------------------ a run

    def run(self, artifact: Path, inputs: np.ndarray, request: RunRequest) -> RunResult:
        artifact = Path(artifact)
        result, outputs, ops = self._job(
            artifact, lambda job: _write_job(job, artifact, inputs, request), fetch_outputs=True)
        return run_result(result, outputs, self.describe(), "machine", "python",
                          ops=op_rows(ops, result))

    def run_ab(self, first: Path, second: Path, inputs: tuple[np.ndarray, np.ndarray],
               request: AbRequest) -> dict:
        """Both artifacts timed in alternating blocks by one runner process on the board."""
        first, second = Path(first), Path(second)
        result, _, _ = self._job(second, lambda job: write_ab_job(job, first, second, inputs,
                                                                  request), fetch_outputs=False)
        return {**result["ab"], "runtime": result["runtime"], "where": self.describe()}

    def _job(self, artifact: Path, write, *, fetch_outputs: bool):
        """Copy a job folder (filled by ``write``) to the board, run the runner there, and
        bring ``outputs.npy`` back if asked; the remote folder is always removed. Returns
        the runner's result, the outputs (or None) and what ``write`` returned."""
        if not artifact.is_file():
            raise DeviceError("no artifact file here", where=str(artifact))
        connect = float(self.device.connect_timeout_s) + 30.0
        remote_dir = self._make_remote_dir(connect)
        outputs = None
        try:
            with tempfile.TemporaryDirectory(prefix="edgeprune-ssh-") as tmp:
                local = Path(tmp)
                written = write(local)
                files = [str(p) for p in sorted(local.iterdir())]
                self._call(self.scp_command(files, self._remote_path(remote_dir + "/")),
                           what="copying the job to the board", timeout=connect + 300, check=True)
                result = self._run_runner(remote_dir, artifact)
                if fetch_outputs:
                    self._call(self.scp_command([self._remote_path(remote_dir + "/outputs.npy")],
                                                str(local / "fetched.npy")),
                               what="copying outputs.npy back", timeout=connect + 300, check=True)
                    outputs = np.load(local / "fetched.npy", allow_pickle=False)
        finally:
            self._remove_remote_dir(remote_dir, connect)
        return result, outputs, written

    def _make_remote_dir(self, timeout: float) -> str:
        proc = self._call(self.ssh_command(["mktemp", "-d", "-t", "edgeprune.XXXXXXXX"]),
                          what="making a temporary folder on the board", timeout=timeout)
        path = proc.stdout.strip()
        if proc.returncode != 0 or not path.startswith("/") or any(
                c.isspace() or c in "\"'\\$`;&|<>*?[]" for c in path):
            raise DeviceError(f"mktemp -d on the board failed: {proc.stderr.strip() or path!r}",
                              where=self.describe(),
                              expected="a POSIX shell with mktemp on the board (Linux)")
        return path

    def _run_runner(self, remote_dir: str, artifact: Path) -> dict:
        python = self.device.python
        line = " ".join([_REMOTE_ENV, self._python_word(), shlex.quote(f"{remote_dir}/runner.py"),
                         shlex.quote(remote_dir)])
        proc = self._call(self._ssh_line(line), what="running the model on the board",
                          timeout=float(self.device.run_timeout_s))
        result = runner.result_from_stdout(proc.stdout)
        if result is None:
            detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DeviceError(f"{python} on the board did not run the runner (exit "
                              f"{proc.returncode}): {detail}", where=f"{self.describe()}: device.python",
                              expected="Python 3.9 or newer with numpy",
                              fix=f"install Python 3 and numpy on the board, or point device.python "
                                  "at the right interpreter")
        if result.get("ok"):
            return result
        stage, error = result.get("stage"), result.get("error", "")
        if stage == "runtime-missing":
            raise DeviceError(error, where=f"{self.describe()}: device.python = {python}",
                              expected="numpy and the runtime importable by that python",
                              fix=f"on the board: {python} -m pip install numpy ai-edge-litert "
                                  "(or onnxruntime, or tflite-runtime)")
        if stage == "load":
            raise UnsupportedError(error, where=str(artifact),
                                   fix="the board's runtime cannot load this artifact; check its "
                                       "version and the recipe's quantize settings")
        raise DeviceError(f"the runner failed at stage {stage!r}: {error}", where=self.describe())

    def _remove_remote_dir(self, remote_dir: str, timeout: float) -> None:
        try:
            subprocess.run(self.ssh_command(["rm", "-rf", "--", remote_dir]), capture_output=True,
                           timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass  # best effort: a failed cleanup must not hide the run's own error


def _write_job(job: Path, artifact: Path, inputs: np.ndarray, request: RunRequest) -> list:
    """The job folder (flat: scp copies its files); returns the one-op models written."""
    return write_job(job, artifact, inputs, request)
