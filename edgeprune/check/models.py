"""The parts of report.json that `edgeprune check` reads, as strict pydantic models.

:func:`parse_report` is the one validation path: ``check`` runs it on the report and
on the baseline entries it compares, and ``--update-baseline`` runs it on every
report it writes, so nothing is written as a baseline that ``check`` would refuse.
Fields ``check`` does not read are kept as they are (``extra="allow"``).

Reports written before ``host_latency_ms`` existed carried this machine's time for
an emulated or microcontroller target as ``latency_ms`` with ``by`` ending in
"(this machine, not the target)"; such a figure is read as ``host_latency_ms``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr, ValidationError, create_model, model_validator

from ..errors import ConfigError, InputError
from ..report.figures import (OPEN, Breakdown, ClassesFigure, Control, Count, Figure, LatencyFigure,  # noqa: F401
                              Number, OpRow, OpsFigure, Positive)
from ..report.schema import SCHEMA_VERSION
from ..targets import Tolerances
from .rules import LATENCY_FIGURES, NUMERIC

LEGACY_HOST_NOTE = "(this machine, not the target)"


def _legacy_host_latency(data: Any) -> Any:
    """An old report's host time for a non-host target, under its new name."""
    old = data.get("latency_ms")
    if (isinstance(old, dict) and isinstance(old.get("by"), str)
            and old["by"].endswith(LEGACY_HOST_NOTE) and "host_latency_ms" not in data):
        data = {k: v for k, v in data.items() if k != "latency_ms"}
        data["host_latency_ms"] = old
    return data


def _class_counts(data: Any) -> Any:
    """``instructions_by_class`` as a figure, whether it came as one, as a plain
    ``{class: count}`` mapping, or as a key of the ``instructions_per_invoke`` figure."""
    total = data.get("instructions_per_invoke")
    classes = data.get("instructions_by_class")
    if classes is None and isinstance(total, dict) and "instructions_by_class" in total:
        classes = total["instructions_by_class"]
    if isinstance(classes, dict) and "method" not in classes and isinstance(total, dict):
        classes = {"value": classes, "unit": total.get("unit", "instructions"),
                   "method": total.get("method"), "by": total.get("by")}
    if classes is not None:
        data = {**data, "instructions_by_class": classes}
    return data


def _normalised(data: Any) -> Any:
    return _class_counts(_legacy_host_latency(data)) if isinstance(data, dict) else data


_FIELDS: dict[str, Any] = {name: (Figure | None, None) for name in NUMERIC}
_FIELDS.update({name: (LatencyFigure | None, None) for name in LATENCY_FIGURES})
_FIELDS.update(instructions_by_class=(ClassesFigure | None, None),
               breakdown=(Breakdown | None, None), ops=(OpsFigure | None, None))
Measurements = create_model(
    "Measurements", __config__=OPEN,
    __validators__={"normalised": model_validator(mode="before")(
        lambda cls, data: _normalised(data))},
    **_FIELDS)


class Artifact(BaseModel):
    model_config = OPEN
    name: StrictStr = Field(min_length=1)
    file: StrictStr | None = None
    format: StrictStr
    sha256: StrictStr | None = None
    measurements: Measurements = Field(default_factory=Measurements)   # type: ignore[valid-type]

    def figure(self, name: str) -> Any:
        value = getattr(self.measurements, name, None)
        if isinstance(value, dict):   # a per-output task metric (OUTPUT/metric), kept as extra
            try:
                return Figure.model_validate(value)
            except ValidationError as exc:
                raise InputError(f"figure {name!r} of artifact {self.name!r} is malformed "
                                 f"({exc.errors()[0]['msg']})", expected="a figure written by edgeprune",
                                 fix="regenerate the report; do not edit it by hand") from None
        return value

    def figure_names(self) -> list[str]:
        return [*type(self.measurements).model_fields, *(self.measurements.model_extra or {})]


class Budget(BaseModel):
    model_config = OPEN
    name: StrictStr
    figure: StrictStr | None = None
    artifact: StrictStr | None = None
    limit: Number | None = None
    value: Number | None = None
    verdict: Literal["pass", "fail", "not_measured"]
    note: StrictStr = ""


class Target(BaseModel):
    model_config = OPEN
    name: StrictStr = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    engine: StrictStr
    threads: StrictInt
    delegate: StrictStr
    device_kind: StrictStr | None = None
    device: Any = None
    tolerances: Tolerances | None = None   # the profile's, as export carried them


class Report(BaseModel):
    model_config = OPEN
    schema_version: StrictInt
    target: Target
    artifacts: list[Artifact]
    budgets: list[Budget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_artifacts(self) -> "Report":
        names = [a.name for a in self.artifacts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"artifact name(s) {', '.join(map(repr, twice))} appear twice")
        return self

    def artifact(self, name: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.name == name), None)


def parse_report(data: Any, source: str) -> Report:
    """``data`` (parsed JSON) as a :class:`Report`; every problem names ``source`` and the field.

    Raises:
        InputError: not a report, or a field of the wrong shape or type.
        ConfigError: a schema version this edgeprune does not read; invalid tolerances.
    """
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError("is not a report (no schema_version)", where=source,
                         expected="a report.json written by `edgeprune export`")
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"schema_version is {version!r}, not an integer",
                         where=f"{source}: schema_version", expected=str(SCHEMA_VERSION),
                         fix="regenerate the file with `edgeprune export`; do not edit it by hand")
    if version != SCHEMA_VERSION:
        newer = version > SCHEMA_VERSION
        raise ConfigError(
            f"schema_version is {version}; this edgeprune reads version {SCHEMA_VERSION}",
            where=f"{source}: schema_version", expected=str(SCHEMA_VERSION),
            fix=("upgrade edgeprune to the version that wrote it" if newer else
                 "re-export with this edgeprune, then refresh the baseline with "
                 "`edgeprune check REPORT --baseline FILE --update-baseline`"))
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        raise _error(exc, data, source) from None


def _error(exc: ValidationError, data: dict, source: str) -> InputError | ConfigError:
    errors = exc.errors()
    first = errors[0]["loc"]
    if len(errors) == 1:
        what = _message(errors[0])
    else:
        problems = [f"{_where(e['loc'], data)}: {_message(e)}" for e in errors[:6]]
        if len(errors) > 6:
            problems.append(f"... and {len(errors) - 6} more")
        what = f"{len(errors)} fields are wrong:\n    " + "\n    ".join(problems)
    where = f"{source}: {_where(first, data)}"
    if tuple(first[:2]) == ("target", "tolerances"):
        return ConfigError(what, where=where, expected="the fields of a target's [tolerances] "
                           "(see targets/README.md)",
                           fix="correct [tolerances] in the target's TOML file and export again")
    return InputError(what, where=where,
                      expected="a report.json as `edgeprune export` writes it "
                               "(schema in edgeprune/report/schema.py)",
                      fix="regenerate the file with `edgeprune export`; do not edit it by hand")


def _where(loc: tuple, data: Any) -> str:
    """``artifact 'int8.tflite': measurements.size_bytes.value`` from a pydantic location."""
    parts: list[str] = []
    if len(loc) >= 2 and loc[0] == "artifacts" and isinstance(loc[1], int):
        arts = data.get("artifacts") if isinstance(data, dict) else None
        art = arts[loc[1]] if isinstance(arts, list) and loc[1] < len(arts) else None
        name = art.get("name") if isinstance(art, dict) else None
        head = f"artifact {name!r}" if isinstance(name, str) else f"artifacts[{loc[1]}]"
        loc = loc[2:]
        if not loc:
            return head
        parts.append(head + ":")
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return " ".join(parts + [text]) if text else " ".join(parts).rstrip(":") or "(top level)"


def _message(err: dict) -> str:
    if err["type"] == "missing":
        return "missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if err["type"].startswith(("string", "int", "float", "bool", "literal", "list", "dict",
                               "model", "too_short", "tuple")) and not isinstance(got, (dict, list)):
        msg += f" (got {got!r})"
    return msg
