"""Target profiles: what a device is, how a model runs there, where to validate it,
and the budgets it must meet. One TOML file per device in ``targets/``; the file
name is the target's name. Every field is documented in ``targets/README.md``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config_io import read_toml, validate_model
from .errors import ConfigError
from .recipe import Recipe, _listify

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# device.python runs on the board with edgeprune's runner as its argument: a Python, nothing else
_PYTHON = re.compile(r"(~/|/)?([A-Za-z0-9_.+-]+/)*python[A-Za-z0-9_.+-]*")


class RuntimeSpec(BaseModel):
    model_config = _STRICT
    engine: Literal["litert", "onnxruntime", "tflm"]
    threads: int = Field(1, ge=1, le=64)
    delegate: Literal["xnnpack", "none"] = "xnnpack"


class LocalDevice(BaseModel):
    """This machine."""

    model_config = _STRICT
    kind: Literal["local"]


class QemuDevice(BaseModel):
    """An emulated aarch64 Linux board: qemu-aarch64 user mode, pinned to a real core."""

    model_config = _STRICT
    kind: Literal["qemu"]
    cpu: Literal["cortex-a53", "cortex-a72", "cortex-a76"]


class SshDevice(BaseModel):
    """A real board reached with the system's OpenSSH client."""

    model_config = _STRICT
    kind: Literal["ssh"]
    host: str
    python: str = "python3"
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    identity_file: str | None = None
    connect_timeout_s: int = Field(10, ge=1, le=600)
    run_timeout_s: int = Field(600, ge=1, le=86400)
    ssh_options: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _safe(self) -> "SshDevice":
        from .devices.ssh_options import check_ssh_option

        for label, value in (("host", self.host), ("user", self.user or "x"),
                             ("python", self.python)):
            if value.startswith("-") or any(c.isspace() or c in ";&|`$<>\"'\\" for c in value):
                raise ValueError(f"device.{label} = {value!r} holds characters not allowed there")
        if not _PYTHON.fullmatch(self.python):
            raise ValueError(f"device.python = {self.python!r} must name a Python interpreter: a "
                             "file name starting with 'python' (python3, ~/venv/bin/python)")
        for opt in self.ssh_options:
            check_ssh_option(opt)
        return self


class MicroDevice(BaseModel):
    """A microcontroller: TFLite Micro's Python interpreter on this machine (op check, arena,
    accuracy) and, when ``core`` is set, the real kernels compiled for that core and run
    under qemu-system-arm (instructions, latency estimate, flash, RAM; see edgeprune/mcu)."""

    model_config = _STRICT
    kind: Literal["tflm"]
    core: Literal["cortex-m4", "cortex-m7", "cortex-m55"] | None = None
    fpu: bool = True
    clock_mhz: float | None = Field(None, gt=0, le=10_000)
    kernels: Literal["cmsis-nn", "reference", "both"] = "cmsis-nn"
    samples: int = Field(8, ge=1, le=256)


class RulesDevice(BaseModel):
    """No runner: the model is checked against compatibility rules only."""

    model_config = _STRICT
    kind: Literal["rules"]
    note: str = ""


Device = Annotated[Union[LocalDevice, QemuDevice, SshDevice, MicroDevice, RulesDevice],
                   Field(discriminator="kind")]


class Calibration(BaseModel):
    """Turns emulated instruction counts into a latency estimate for the board.

    One thread: cycles = sum over instruction classes of count x ``cycles_per_class``
    (or total x ``cycles_per_instruction`` for a profile calibrated with one figure);
    ms = cycles / (``clock_mhz`` x 1000). ``threads`` threads (the profile's): that
    times ``serial_fraction + (1 - serial_fraction) / threads`` (Amdahl's law), plus
    ``memory_ms_per_mb`` per MB of weights beyond ``cache_bytes`` (read every invoke).
    ``error_rel`` is the largest |estimate / published - 1| over ``error_rows``
    published figures (``error_how`` says which); None where no figure exists.
    Written by ``python -m edgeprune.devices.cost.fit --write`` (see docs/devices.md).
    """

    model_config = _STRICT
    clock_mhz: float = Field(gt=0)
    cycles_per_class: dict[str, float] = Field(default_factory=dict)
    cycles_per_instruction: float | None = Field(None, gt=0)
    serial_fraction: float = Field(0.0, ge=0, le=1)
    memory_ms_per_mb: float = Field(0.0, ge=0)
    cache_bytes: int = Field(0, ge=0)
    name: str = ""
    source: str = ""
    error_rel: float | None = Field(None, ge=0)
    error_rows: int = Field(0, ge=0)
    error_how: str = ""

    @model_validator(mode="after")
    def _one_cost(self) -> "Calibration":
        from .devices.cost.classes import CLASSES

        if bool(self.cycles_per_class) == (self.cycles_per_instruction is not None):
            raise ValueError("give either cycles_per_class (one cost per instruction class) or "
                             "cycles_per_instruction (one for all), not both or neither")
        unknown = sorted(set(self.cycles_per_class) - set(CLASSES))
        missing = [c for c in CLASSES if self.cycles_per_class and c not in self.cycles_per_class]
        if unknown or missing:
            raise ValueError(f"cycles_per_class needs exactly the classes {', '.join(CLASSES)}"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                             + (f"; missing: {', '.join(missing)}" if missing else ""))
        if any(v < 0 for v in self.cycles_per_class.values()):
            raise ValueError("cycles_per_class values must be >= 0")
        return self


class Memory(BaseModel):
    model_config = _STRICT
    ram_bytes: int | None = Field(None, ge=1)
    flash_bytes: int | None = Field(None, ge=1)


class Compatibility(BaseModel):
    """Rules for accelerators whose compiler is not available here (e.g. the Edge TPU)."""

    model_config = _STRICT
    requires_full_int8: bool = True
    requires_int8_io: bool = True
    static_shapes: bool = True
    supported_ops: tuple[str, ...] = ()
    note: str = ""


class Firmware(BaseModel):
    """C sources for a firmware build (written when ``emit_c`` is true or with --emit-c)."""

    model_config = _STRICT
    symbol: str = "g_model"
    arena_headroom_fraction: float = Field(0.1, ge=0, le=10)
    alignment: int = Field(16, ge=4, le=4096)


class Budgets(BaseModel):
    """Limits the deployed artifact must meet; leave one out to not check it."""

    model_config = _STRICT
    max_size_bytes: int | None = Field(None, ge=1)
    max_gzip_bytes: int | None = Field(None, ge=1)
    max_latency_ms: float | None = Field(None, gt=0)
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)
    max_metric_drop: float | None = Field(None, ge=0)   # in the metric's units, its worse direction
    max_metric_rel_drop: float | None = Field(None, ge=0)  # the same, as a fraction of the baseline's value
    metric: str | None = None        # for max_metric_drop / max_metric_rel_drop; default the task's primary metric
    max_arena_bytes: int | None = Field(None, ge=1)
    max_flash_bytes: int | None = Field(None, ge=1)
    max_ram_bytes: int | None = Field(None, ge=1)
    max_instructions_per_invoke: int | None = Field(None, ge=1)


class Tolerances(BaseModel):
    """How much a figure may move before `edgeprune check` calls it a regression."""

    model_config = _STRICT
    size_bytes_rel: float = Field(0.0, ge=0)
    accuracy_points: float = Field(0.5, ge=0)
    f1_points: float = Field(0.5, ge=0)
    latency_rel: float = Field(0.10, ge=0)
    instructions_rel: float = Field(0.01, ge=0)
    arena_bytes_rel: float = Field(0.0, ge=0)
    metric_rel: float = Field(0.05, ge=0)   # regression errors (mse, mae, max_abs_error), relative


class TargetProfile(BaseModel):
    model_config = _STRICT
    name: str
    description: str
    arch: Literal["x86_64", "aarch64", "armv7", "cortex-m"]
    cpu: str
    runtime: RuntimeSpec
    device: Device
    recipe: Recipe = Field(default_factory=Recipe)
    budgets: Budgets = Field(default_factory=Budgets)
    tolerances: Tolerances = Field(default_factory=Tolerances)
    calibration: Calibration | None = None
    memory: Memory | None = None
    compatibility: Compatibility | None = None
    emit_c: bool = False
    firmware: Firmware = Field(default_factory=Firmware)

    @model_validator(mode="after")
    def _consistent(self) -> "TargetProfile":
        if not _SAFE_NAME.match(self.name):
            raise ValueError(f"name {self.name!r} must be letters, digits, '.', '_' or '-'")
        engine = self.runtime.engine
        if engine == "tflm" and self.device.kind != "tflm":
            raise ValueError('runtime.engine = "tflm" needs device.kind = "tflm"')
        if self.device.kind == "tflm" and engine != "tflm":
            raise ValueError('device.kind = "tflm" needs runtime.engine = "tflm"')
        deploy_fmt = self.recipe.deploy.split(".")[1]
        wanted = self.deploy_format()
        if deploy_fmt != wanted:
            raise ValueError(f"recipe.deploy = {self.recipe.deploy!r} is a {deploy_fmt} file, "
                             f"but runtime.engine = {engine!r} runs {wanted}")
        return self

    def deploy_format(self) -> str:
        """The file format the target's runtime runs: ``onnx`` or ``tflite``."""
        return "onnx" if self.runtime.engine == "onnxruntime" else "tflite"


def targets_dirs() -> list[Path]:
    """Where named targets are looked up: $EDGEPRUNE_TARGETS (os.pathsep-separated), then
    the ``targets/`` folder of this checkout."""
    dirs = [Path(p) for p in os.environ.get("EDGEPRUNE_TARGETS", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "targets")
    return dirs


def available_targets() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in targets_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.toml")):
                found.setdefault(f.stem, f)
    return found


def load_target(name_or_path: str | Path, recipe_override: Path | None = None) -> TargetProfile:
    """Load a profile by name (``rpi4``) or by path (``my/board.toml``)."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or os.sep in text):
        known = available_targets()
        if text not in known:
            raise ConfigError(f"no target named {text!r}", where="--target",
                              expected=f"one of: {', '.join(sorted(known)) or '(none found)'}",
                              fix="run `edgeprune targets`, or pass the path of a TOML profile")
        path = known[text]
    data = _listify(read_toml(path, what="target profile"))
    if data.get("name", path.stem) != path.stem:
        raise ConfigError(f"name = {data.get('name')!r} differs from the file name",
                          where=f"{path}: name", expected=repr(path.stem),
                          fix="a target's name is its file name; make them equal")
    data.setdefault("name", path.stem)
    profile = validate_model(TargetProfile, data, source=str(path))
    if recipe_override is not None:
        from .recipe import load_recipe

        recipe = load_recipe(recipe_override, base=profile.recipe)
        try:
            profile = TargetProfile.model_validate({**_dump(profile), "recipe": recipe})
        except Exception as exc:
            raise ConfigError(f"the recipe does not fit target {profile.name!r}: {exc}",
                              where=str(recipe_override)) from None
    return profile


def _dump(profile: TargetProfile) -> dict:
    return {name: getattr(profile, name) for name in TargetProfile.model_fields}
