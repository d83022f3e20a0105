"""Seeded mutations of model, recipe, target, data and report files, each run once through
``edgeprune export`` or ``edgeprune check`` in-process.

Used by tests/integration/test_fuzz.py (CI) and benchmarks/hostile_inputs.py (the whole
catalogue). Every outcome must be exit 0, 2, 3 or 4 with no traceback, and the output
folder must hold either the previous output, intact, or a complete new one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ALLOWED_EXITS = {0, 2, 3, 4}
RECIPE = ('quantize = ["int8"]\nformats = ["tflite"]\nfinetune = { epochs = 0 }\n'
          'representative_samples = 8\ntflite_sparse_encoding = "never"\n')
TARGET = '''name = "host"
description = "this machine, LiteRT"
arch = "x86_64"
cpu = "x86-64"

[runtime]
engine = "litert"
threads = 1
delegate = "xnnpack"

[device]
kind = "local"

[recipe]
prune = { structure = "unstructured", final_sparsity = 0.5 }
quantize = ["int8"]
formats = ["tflite"]

[budgets]
max_size_bytes = 100_000
'''
_ODD_NUMBERS = ["1e308", "-1", "0", "1", "9223372036854775807", "inf", "nan", "-inf", "1e-320",
                "4294967296", "-9223372036854775808", "1.5"]
_ODD_VALUES = ['"x"', "[]", "{}", "true", '["int8", 3]', '""', "[[1]]"]


@dataclass
class Case:
    kind: str              # model | data | recipe | target | check
    name: str              # how it was mutated
    args: list[str]        # the command line
    exports: bool = True


@dataclass
class Outcome:
    case: Case
    exit_code: int
    message: str
    traceback: bool
    leftovers: list[str] = field(default_factory=list)
    previous_intact: bool | None = None   # for failed exports: the previous output untouched

    @property
    def ok(self) -> bool:
        return (self.exit_code in ALLOWED_EXITS and not self.traceback and not self.leftovers
                and self.previous_intact is not False)


# ---------------------------------------------------------------- the base inputs

def make_base(root: Path, keras) -> dict[str, Path]:
    """A 16 -> 3 Dense model in every format, its data, a recipe, a target; no report yet."""
    import edgeprune.keras_env as keras_env

    root.mkdir(parents=True, exist_ok=True)
    keras_env.set_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, name="head")])
    model.save(root / "m.h5")
    model.save(root / "m.keras")
    model.save(root / "m_sm", save_format="tf")
    rng = np.random.default_rng(0)
    np.savez(root / "d.npz", x_train=rng.random((16, 16), dtype=np.float32), y_train=np.arange(16) % 3,
             x_test=rng.random((8, 16), dtype=np.float32), y_test=np.arange(8) % 3)
    (root / "r.toml").write_text(RECIPE)
    (root / "targets").mkdir(exist_ok=True)
    (root / "targets" / "host.toml").write_text(TARGET)
    return {"h5": root / "m.h5", "keras": root / "m.keras", "sm": root / "m_sm", "data": root / "d.npz",
            "recipe": root / "r.toml", "target": root / "targets" / "host.toml", "out": root / "out"}


def export_args(base: dict, **replace: Path) -> list[str]:
    paths = {**base, **replace}
    return ["export", str(paths.get("model", base["h5"])), "--data", str(paths["data"]), "--recipe",
            str(paths["recipe"]), "--target", str(paths["target"]), "--out", str(base["out"])]


# ---------------------------------------------------------------- mutations

def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    op = rng.choice(["truncate", "flip", "flip", "zero", "insert"])
    if op == "truncate" or not data:
        cut = rng.randrange(len(data) or 1)
        return data[:cut], f"truncated at {cut}/{len(data)}"
    buf = bytearray(data)
    if op == "flip":
        n = rng.choice([1, 8, 64, 256])
        for _ in range(n):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf), f"{n} bit flips"
    at = rng.randrange(len(buf))
    size = rng.choice([1, 16, 256])
    if op == "zero":
        buf[at:at + size] = bytes(len(buf[at:at + size]))
        return bytes(buf), f"{size} bytes zeroed at {at}"
    buf[at:at] = bytes(rng.randrange(256) for _ in range(size))
    return bytes(buf), f"{size} random bytes inserted at {at}"


def mutate_text(text: str, rng: random.Random) -> tuple[str, str]:
    """Type swaps, odd numbers, dropped or repeated lines, or a byte-level mutation."""
    op = rng.choice(["number"] * 3 + ["value"] * 3 + ["line", "bytes", "nest"])
    numbers = list(re.finditer(r"(?<![\w.])-?\d[\d_.eE+-]*", text))
    values = list(re.finditer(r'(?<=[=:] )("[^"\n]*"|\[[^\]\n]*\]|\{[^}\n]*\}|true|false|-?\d[\w.+-]*)', text))
    if op == "number" and numbers:
        m, new = rng.choice(numbers), rng.choice(_ODD_NUMBERS)
        return text[:m.start()] + new + text[m.end():], f"number {m.group(0)!r} -> {new}"
    if op == "value" and values:
        m, new = rng.choice(values), rng.choice(_ODD_VALUES + _ODD_NUMBERS)
        return text[:m.start(1)] + new + text[m.end(1):], f"value {m.group(1)[:20]!r} -> {new}"
    if op == "nest" and values:
        m, depth = rng.choice(values), rng.choice([50, 5000, 100_000])
        return (text[:m.start(1)] + "[" * depth + m.group(1) + "]" * depth + text[m.end(1):],
                f"value {m.group(1)[:20]!r} nested {depth} deep")
    lines = text.splitlines(keepends=True)
    if op == "line" and lines:
        i = rng.randrange(len(lines))
        if rng.random() < 0.5:
            return "".join(lines[:i] + lines[i + 1:]), f"line {i + 1} dropped"
        return "".join(lines[:i + 1] + lines[i:]), f"line {i + 1} repeated"
    data, how = mutate_bytes(text.encode(), rng)
    return data.decode("utf-8", errors="replace"), how


def _data_variants(x_train, y_train, x_test, y_test):
    """Semantic damage to the data arrays: (description, arrays)."""
    big = x_train.astype(np.float64)
    yield "inputs around 1e38", dict(x_train=x_train * 1e38, x_test=x_test * 1e38)
    yield "inputs 3e38", dict(x_train=x_train * 3e38)
    yield "float64 inputs 1e300", dict(x_train=big * 1e300)
    yield "a NaN input", dict(x_train=np.where(np.arange(x_train.size).reshape(x_train.shape) == 3, np.nan, x_train))
    yield "an infinite test input", dict(x_test=np.full_like(x_test, np.inf))
    yield "labels out of range", dict(y_test=y_test + 7)
    yield "negative labels", dict(y_train=-y_train - 1)
    yield "fractional labels", dict(y_train=y_train + 0.5)
    yield "labels as strings", dict(y_train=y_train.astype(str))
    yield "one-hot labels of the wrong width", dict(y_train=np.eye(5)[y_train % 5])
    yield "int64 inputs 2**62", dict(x_train=(x_train * 2**62).astype(np.int64))
    yield "bool inputs", dict(x_train=x_train > 0.5)
    yield "complex inputs", dict(x_train=x_train.astype(np.complex64))
    yield "inputs of the wrong shape", dict(x_train=x_train[:, :8])
    yield "1-D inputs", dict(x_test=x_test[:, 0])
    yield "no test samples", dict(x_test=x_test[:0], y_test=y_test[:0])
    yield "one training sample", dict(x_train=x_train[:1], y_train=y_train[:1])
    yield "labels and inputs of different lengths", dict(y_train=y_train[:-3])
    yield "missing y_test", dict(y_test=None)
    yield "pickled object labels", dict(y_test=np.array([{"a": 1}] * len(y_test), dtype=object))


def cases(base: dict, root: Path, per_kind: dict[str, int], seed: int = 12) -> list[Case]:
    """The mutated inputs, written under ``root``; deterministic for a given seed."""
    rng = random.Random(seed)
    out: list[Case] = []
    made = root / "cases"
    made.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count()

    def path(name: str) -> Path:
        return made / f"{next(numbers):03d}-{name}"

    for i in range(per_kind.get("recipe", 0)):
        text, how = mutate_text(RECIPE, rng)
        p = path("recipe.toml")
        p.write_text(text)
        out.append(Case("recipe", how, export_args(base, recipe=p)))
    for i in range(per_kind.get("target", 0)):
        text, how = mutate_text(TARGET, rng)
        folder = path("target")
        folder.mkdir()
        (folder / "host.toml").write_text(text)
        out.append(Case("target", how, export_args(base, target=folder / "host.toml")))
    with np.load(base["data"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    variants = list(_data_variants(**arrays))
    for i in range(per_kind.get("data", 0)):
        p = path("d.npz")
        if i < len(variants):
            how, change = variants[i]
            merged = {k: v for k, v in {**arrays, **change}.items() if v is not None}
            np.savez(p, **merged)
        else:
            data, how = mutate_bytes(base["data"].read_bytes(), rng)
            p.write_bytes(data)
        out.append(Case("data", how, export_args(base, data=p)))
    for i in range(per_kind.get("model", 0)):
        fmt = ["h5", "keras", "sm", "keras_config"][i % 4]
        p, how = _mutated_model(base, fmt, path(f"m-{fmt}"), rng)
        out.append(Case("model", f"{fmt}: {how}", export_args(base, model=p)))
    if per_kind.get("check"):
        out.extend(_check_cases(base, rng, per_kind["check"], path))
    return out


def _mutated_model(base: dict, fmt: str, dest: Path, rng: random.Random) -> tuple[Path, str]:
    if fmt == "h5":
        data, how = mutate_bytes(base["h5"].read_bytes(), rng)
        dest = dest.with_suffix(".h5")
        dest.write_bytes(data)
        return dest, how
    if fmt == "keras":
        data, how = mutate_bytes(base["keras"].read_bytes(), rng)
        dest = dest.with_suffix(".keras")
        dest.write_bytes(data)
        return dest, how
    if fmt == "keras_config":
        dest = dest.with_suffix(".keras")
        with zipfile.ZipFile(base["keras"]) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        text, how = mutate_text(json.dumps(json.loads(members["config.json"]), indent=0), rng)
        members["config.json"] = text.encode()
        with zipfile.ZipFile(dest, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return dest, f"config.json {how}"
    shutil.copytree(base["sm"], dest)
    victim = rng.choice(["saved_model.pb", "keras_metadata.pb", "variables/variables.data-00000-of-00001",
                         "variables/variables.index"])
    data, how = mutate_bytes((dest / victim).read_bytes(), rng)
    (dest / victim).write_bytes(data)
    return dest, f"{victim} {how}"


def _check_cases(base: dict, rng: random.Random, count: int, path) -> list[Case]:
    report = base["out"] / "host" / "report.json"
    baseline = base["out"].parent / "baseline.json"
    if not baseline.exists():
        shutil.copy(report, baseline)
    out = []
    for i in range(count):
        mutate_report = i % 2 == 0
        source = report if mutate_report else baseline
        text, how = mutate_text(source.read_text(), rng)
        p = path("report.json")
        p.write_text(text)
        args = ["check", str(p if mutate_report else report), "--baseline", str(baseline if mutate_report else p)]
        out.append(Case("check", f"{'report' if mutate_report else 'baseline'} {how}", args, exports=False))
    return out


# ---------------------------------------------------------------- running a case

def output_state(out: Path) -> str | None:
    """A digest of the complete output folder OUT/host, or None when there is none."""
    final = out / "host"
    if not final.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in final.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(final)).encode() + f.read_bytes())
    return h.hexdigest()


def output_complete(out: Path) -> bool:
    """report.json and manifest.json are whole, and every artifact listed is there with its sha256."""
    final = out / "host"
    try:
        json.loads((final / "report.json").read_text())
        manifest = json.loads((final / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    for art in manifest["artifacts"]:
        f = final / art["file"]
        if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != art["sha256"]:
            return False
    return True


def run_case(case: Case, base: dict) -> Outcome:
    from click.testing import CliRunner

    from edgeprune.cli import cli

    out = base["out"]
    before = output_state(out)
    result = CliRunner().invoke(cli, case.args)
    text = result.output or ""
    tb = "Traceback" in text or (result.exception is not None and not isinstance(result.exception, SystemExit))
    lines = [line for line in text.splitlines() if line.startswith(("error:", "Error:"))]
    message = (lines[0] if lines else (text.strip().splitlines() or [""])[-1])[:160]
    if tb and result.exception is not None and not isinstance(result.exception, SystemExit):
        message = f"{type(result.exception).__name__}: {result.exception}"[:160]
    leftovers = sorted(p.name for p in out.iterdir() if p.name != "host") if out.exists() else []
    intact = None
    if case.exports:
        if result.exit_code in (0, 3):
            intact = output_complete(out)
        else:
            intact = output_state(out) == before
    return Outcome(case, result.exit_code, message, tb, leftovers, intact)
