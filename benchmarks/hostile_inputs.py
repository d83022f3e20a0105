"""Hostile files and failing machines: the whole catalogue, and the fuzz totals.

    python benchmarks/hostile_inputs.py [--fuzz-seed 12] [--fuzz-scale 1]

Each case runs `edgeprune` (in-process, or as a real process where signals, users or
concurrency matter) against an output folder that already holds a previous output, and
the table says: the exit code, the first line of the message, whether a planted payload
ran, what was left beside the output or in the cache's temporary folder, and whether
the previous output is intact (or, for runs that succeed, the new one complete). Then
the fuzz test's mutations (tests/fuzzing.py) are run and counted by exit code.
Needs root for the tmpfs (full disk) and the other-user cases; runs in a few minutes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "integration")]

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import fuzzing  # noqa: E402
from edgeprune import keras_env  # noqa: E402
from edgeprune.cli import cli  # noqa: E402

SSH_BOARD = """description = "a board"
arch = "aarch64"
cpu = "cortex-a72"
[runtime]
engine = "litert"
[device]
kind = "ssh"
host = "127.0.0.1"
port = {port}
connect_timeout_s = 5
python = "{python}"
ssh_options = {options}
"""


class Bench:
    def __init__(self, root: Path):
        self.root = root
        self.keras = keras_env.keras()
        self.base = fuzzing.make_base(root / "base", self.keras)
        self.out = self.base["out"]
        self.cache = Path(os.environ["EDGEPRUNE_CACHE"])
        self.rows: list[tuple] = []
        self.marker = root / "payload-ran"
        first = CliRunner().invoke(cli, fuzzing.export_args(self.base))
        assert first.exit_code == 0, first.output
        self.previous = root / "previous"
        shutil.copytree(self.out / "host", self.previous)

    # ---------------------------------------------------------------- bookkeeping

    def reset(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        shutil.copytree(self.previous, self.out / "host")
        self.marker.unlink(missing_ok=True)

    def record(self, case: str, code: int, message: str, expect_new: bool = False) -> None:
        leftovers = sorted(p.name for p in self.out.iterdir() if p.name != "host") if self.out.exists() else []
        leftovers += [f"cache/tmp/{p.name}" for p in (self.cache / "tmp").glob("*")]
        if expect_new:
            state = "new, complete" if fuzzing.output_complete(self.out) else "HALF-WRITTEN"
        else:
            state = "intact" if _same_tree(self.out / "host", self.previous) else "CHANGED"
        self.rows.append((case, code, _summary(message),
                          "RAN" if self.marker.exists() else "no", ", ".join(leftovers) or "-", state))

    def cli(self, case: str, args: list[str], expect_new: bool = False) -> None:
        self.reset()
        result = CliRunner().invoke(cli, args)
        text = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            text = f"TRACEBACK {type(result.exception).__name__}: {result.exception}"
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith(("error", "Error", "TRACEBACK"))), None)
        self.record(case, result.exit_code, "\n".join(lines[start:]) if start is not None else
                    (lines[-1] if lines else ""), expect_new)

    def export(self, case: str, expect_new: bool = False, extra: tuple = (), **replace) -> None:
        self.cli(case, fuzzing.export_args(self.base, **replace) + list(extra), expect_new)

    def process(self, args: list[str], env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "edgeprune", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
                                     **(env or {})})

    # ---------------------------------------------------------------- hostile model files

    def models(self) -> None:
        keras, tf = self.keras, keras_env.tf()
        marker = str(self.marker)

        def payload(t):
            with open(marker, "w") as fh:
                fh.write("ran")
            return t

        for fmt in ("tf", "h5", "keras"):
            path = self.root / ("lambda_sm" if fmt == "tf" else f"lambda.{fmt}")
            keras.Sequential([keras.Input((16,)), keras.layers.Lambda(payload, name="payload"),
                              keras.layers.Dense(3)]).save(path, **({"save_format": "tf"} if fmt == "tf" else {}))
            self.export(f"Lambda layer writing a file ({'SavedModel' if fmt == 'tf' else '.' + fmt})", model=path)

        plant = self.root / "plant"
        plant.mkdir(exist_ok=True)
        (plant / "edgeprune_bench_payload.py").write_text(f"open({marker!r}, 'w').write('ran')\n")
        sys.path.insert(0, str(plant))
        path = self.root / "module.keras"
        shutil.copy(self.base["keras"], path)
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        config = json.loads(members["config.json"])
        config.update(module="edgeprune_bench_payload", class_name="Model")
        members["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        self.export(".keras config naming a module to import", model=path)

        def writer(class_name):
            def call(self_, x):
                tf.io.write_file(marker, "ran")
                return x
            return type(class_name, (keras.layers.Layer,), {"call": call})

        for class_name, case in (("Writer", "custom SavedModel layer whose graph writes a file"),
                                 ("Dense", "WriteFile op behind a built-in class name")):
            path = self.root / f"graph_{class_name}"
            keras.Sequential([keras.Input((16,)), writer(class_name)(name="w"), keras.layers.Dense(3)]).save(
                path, save_format="tf")
            self.marker.unlink(missing_ok=True)
            self.export(case, model=path)

        def py_call(self_, x):
            y = tf.numpy_function(lambda a: a, [x], tf.float32, stateful=False)
            y.set_shape(x.shape)
            return y

        path = self.root / "pyfunc_sm"
        keras.Sequential([keras.Input((16,)), type("Dense", (keras.layers.Layer,), {"call": py_call})(name="p"),
                          keras.layers.Dense(3)]).save(path, save_format="tf")
        self.export("PyFunc op in a SavedModel graph", model=path)

        model = keras.models.load_model(self.base["h5"], compile=False)
        kernel, bias = model.layers[0].get_weights()
        kernel[0, 0] = np.nan
        model.layers[0].set_weights([kernel, bias])
        model.save(self.root / "nan.h5")
        self.export("NaN weight in an .h5", model=self.root / "nan.h5")

    # ---------------------------------------------------------------- recipes, data, options

    def recipes_and_data(self) -> None:
        for name, text in (("finetune.learning_rate = inf", fuzzing.RECIPE.replace("epochs = 0", "epochs = 1, learning_rate = inf")),
                           ("recipe seed = -1", fuzzing.RECIPE + "seed = -1\n")):
            path = self.root / f"r-{len(self.rows)}.toml"
            path.write_text(text)
            self.export(name, recipe=path)
        self.export("--seed 99999999999", extra=("--seed", "99999999999"))
        with np.load(self.base["data"]) as npz:
            arrays = {k: npz[k] for k in npz.files}
        for scale in (1e38, 3e38):
            path = self.root / f"d-{scale:g}.npz"
            np.savez(path, **{**arrays, "x_train": arrays["x_train"] * scale, "x_test": arrays["x_test"] * scale})
            self.export(f"inputs up to {scale:g}", expect_new=scale < 2e38, data=path)
        path = self.root / "d.npz"
        np.save(self.root / "x.npy", arrays["x_train"])
        (self.root / "x.npy").rename(path)
        self.export(".npy file named .npz", data=path)

    def targets(self) -> None:
        script = self.root / "payload.sh"
        script.write_text(f"#!/bin/sh\necho ran > {self.marker}\nexit 1\n")
        script.chmod(0o755)
        for option in ("ProxyCommand", "LocalCommand", "KnownHostsCommand", "proxycommand"):
            board = self.root / "board" / "board.toml"
            board.parent.mkdir(exist_ok=True)
            opts = [f"{option}={script}"] + (["PermitLocalCommand=yes"] if option == "LocalCommand" else [])
            board.write_text(SSH_BOARD.format(port=22, python="python3", options=json.dumps(opts)))
            self.export(f"ssh_options {option}=<script writing a file>", target=board)
        board.write_text(SSH_BOARD.format(port=22, python="/sbin/reboot", options="[]"))
        self.export("device.python = /sbin/reboot", target=board)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        board.write_text(SSH_BOARD.format(port=port, python="python3", options="[]"))
        started = time.monotonic()
        self.export("unreachable SSH board", target=board)
        self.rows[-1] = (*self.rows[-1][:2], f"{self.rows[-1][2][:60]} (after {time.monotonic() - started:.2f}s)",
                         *self.rows[-1][3:])

    # ---------------------------------------------------------------- failing machines

    def machines(self) -> None:
        small = self.root / "small"
        small.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)]).returncode == 0:
            saved = self.out
            try:
                self.out = small / "out"
                self.reset()
                fd = os.open(small / "filler", os.O_WRONLY | os.O_CREAT)  # the disk is full before the run
                try:
                    while os.write(fd, b"\0" * 4096):
                        pass
                except OSError:
                    pass
                finally:
                    os.close(fd)
                result = CliRunner().invoke(cli, fuzzing.export_args(self.base)[:-1] + [str(self.out)])
                self.record("full disk (a full tmpfs as --out)", result.exit_code,
                            next((x for x in result.output.splitlines() if x.startswith("error")), result.output))
            finally:
                self.out = saved
                subprocess.run(["umount", "-l", str(small)])
        self._unprivileged("previous output read-only (0555), run as nobody", sticky=False)
        self._unprivileged("previous output owned by root, sticky parent, run as nobody", sticky=True)
        self._concurrent()
        self._sigkill()
        self._sigterm()

    def _unprivileged(self, case: str, sticky: bool) -> None:
        if os.geteuid() != 0:
            self.rows.append((case, "-", "needs root to change user", "-", "-", "-"))
            return
        shared = Path(tempfile.mkdtemp(prefix="edgeprune-bench-", dir="/tmp"))
        shared.chmod(0o1777 if sticky else 0o777)
        shutil.copytree(self.previous, shared / "host")
        if not sticky:
            for p in [shared / "host", *(shared / "host").rglob("*")]:
                os.chown(p, 65534, 65534)
            (shared / "host").chmod(0o555)
        code = ("import sys\nfrom pathlib import Path\nfrom edgeprune.errors import ConfigError\n"
                "from edgeprune.output import staged_dir\ntry:\n"
                "    with staged_dir(Path(sys.argv[1])) as s:\n        (s / 'report.json').write_text('new')\n"
                "except ConfigError as exc:\n    print('error:', exc)\n    sys.exit(2)\n")
        python = "/usr/bin/python3"  # the standard library is enough; the venv's is private to root
        pkg = Path(tempfile.mkdtemp(prefix="edgeprune-pkg-", dir="/tmp"))
        shutil.copytree(REPO / "edgeprune", pkg / "edgeprune")
        subprocess.run(["chmod", "-R", "a+rX", str(pkg)])
        proc = subprocess.run([python, "-c", code, str(shared / "host")], user="nobody", capture_output=True,
                              text=True, cwd="/", env={"PYTHONPATH": str(pkg), "PATH": "/usr/bin:/bin"})
        intact = _same_tree(shared / "host", self.previous)
        left = ", ".join(sorted(p.name for p in shared.iterdir() if p.name != "host")) or "-"
        self.rows.append((case, proc.returncode, (proc.stdout or proc.stderr).strip().splitlines()[0][:90],
                          "no", left, "intact" if intact else "CHANGED"))
        subprocess.run(["chmod", "-R", "u+w", str(shared)])
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(pkg, ignore_errors=True)

    def _concurrent(self) -> None:
        self.reset()
        procs = [self.process(fuzzing.export_args(self.base)[:] ) for _ in range(2)]
        codes = [p.wait(timeout=600) for p in procs]
        errors = [p.stderr.read().strip().splitlines()[-1:] for p in procs]
        self.record("two runs finishing at the same moment (2 processes)", "/".join(map(str, codes)),
                    f"both ended: {codes}" + (f" {errors}" if any(codes) else ""), expect_new=True)

    def _sigkill(self) -> None:
        self.reset()
        proc = self.process(fuzzing.export_args(self.base))
        self._wait_for_conversion(proc)
        proc.kill()
        proc.wait()
        left = sorted(p.name.split("-")[0] for p in self.out.iterdir() if p.name != "host")
        result = CliRunner().invoke(cli, fuzzing.export_args(self.base))
        self.record(f"SIGKILL in TFLite conversion (left {left}), then a new run", result.exit_code,
                    result.output.strip().splitlines()[-1], expect_new=True)

    def _sigterm(self) -> None:
        times = []
        for delay in (0.0, 0.2, 0.5):
            self.reset()
            proc = self.process(fuzzing.export_args(self.base))
            self._wait_for_conversion(proc)
            time.sleep(delay)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            times.append(time.monotonic() - sent)
            time.sleep(0.3)
            self.record(f"SIGTERM {delay:.1f}s into TFLite conversion: exit after {times[-1]:.2f}s",
                        proc.returncode, next((x for x in err.splitlines() if "interrupted" in x or "Trace" in x), ""))

    def _wait_for_conversion(self, proc) -> None:
        runs = self.cache / "tmp"
        while proc.poll() is None:
            if any(p.is_dir() for run in runs.glob("run-*") for p in run.glob("tmp*")):
                return
            time.sleep(0.01)

    def writes_outside(self) -> None:
        """A whole run in a process with an empty HOME and system temp folder."""
        home, systmp = self.root / "home", self.root / "systmp"
        home.mkdir()
        systmp.mkdir()
        self.reset()
        proc = self.process(fuzzing.export_args(self.base), env={"HOME": str(home), "TMPDIR": str(systmp),
                                                                 "XDG_CACHE_HOME": str(home / ".cache")})
        _, err = proc.communicate(timeout=600)
        written = [str(p.relative_to(self.root)) for p in [*home.rglob("*"), *systmp.rglob("*")]]
        self.rows.append(("a normal run: files written in HOME or the system temp folder", proc.returncode,
                          ", ".join(written) or "none", "no", "-", "new, complete"
                          if fuzzing.output_complete(self.out) else "HALF-WRITTEN"))

    # ---------------------------------------------------------------- fuzz

    def fuzz(self, seed: int, scale: int) -> collections.Counter:
        from test_fuzz import PER_KIND  # the CI test's mix

        per_kind = {k: v * scale for k, v in PER_KIND.items()}
        self.reset()
        totals: collections.Counter = collections.Counter()
        bad = []
        for case in fuzzing.cases(self.base, self.root / f"fuzz-{seed}", per_kind, seed=seed):
            outcome = fuzzing.run_case(case, self.base)
            totals[(case.kind, outcome.exit_code)] += 1
            if not outcome.ok:
                bad.append(outcome)
        for o in bad:
            print(f"FUZZ FAILURE {o.case.kind} {o.case.name}: exit {o.exit_code} {o.message}")
        return totals


def _summary(message: str) -> str:
    """The error's first line without the path prefix, and its detail line when the first is generic."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = re.sub(r"^(error|Error): (/\S+: )?", "", lines[0])
    if first.endswith(":") and len(lines) > 1:
        first += " " + lines[1]
    return first


def _same_tree(a: Path, b: Path) -> bool:
    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return a.is_dir() and files(a) == files(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-seed", type=int, default=12)
    parser.add_argument("--fuzz-scale", type=int, default=1, help="multiplies the fuzz test's case counts")
    parser.add_argument("--only", nargs="*", help="sections to run: models recipes_and_data targets "
                                                  "machines writes_outside fuzz (default: all)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="edgeprune-hostile-"))
    os.environ["EDGEPRUNE_CACHE"] = str(root / "cache")
    try:
        bench = Bench(root)
        for section in (bench.models, bench.recipes_and_data, bench.targets, bench.machines,
                        bench.writes_outside):
            if args.only and section.__name__ not in args.only:
                continue
            try:
                section()
            except Exception as exc:  # a broken case must not hide the others
                bench.rows.append((f"{section.__name__}: BENCHMARK ERROR", "-", repr(exc)[:90], "-", "-", "-"))
        header = ("case", "exit", "message", "payload", "leftovers", "previous output")
        rows = [header] + [tuple(str(c) for c in row) for row in bench.rows]
        widths = [min(110, max(len(r[i]) for r in rows)) for i in range(len(header))]
        for i, row in enumerate(rows):
            print(" | ".join(cell[:w].ljust(w) for cell, w in zip(row, widths)))
            if i == 0:
                print("-+-".join("-" * w for w in widths))
        if args.only and "fuzz" not in args.only:
            return
        started = time.monotonic()
        totals = bench.fuzz(args.fuzz_seed, args.fuzz_scale)
        by_code = collections.Counter()
        for (kind, code), n in totals.items():
            by_code[code] += n
        print(f"\nfuzz (seed {args.fuzz_seed}, {sum(totals.values())} cases, {time.monotonic() - started:.0f}s): "
              + ", ".join(f"exit {code}: {n}" for code, n in sorted(by_code.items())))
        kinds = sorted({k for k, _ in totals})
        for kind in kinds:
            print(f"  {kind:7} " + ", ".join(f"exit {c}: {n}" for (k, c), n in sorted(totals.items()) if k == kind))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
