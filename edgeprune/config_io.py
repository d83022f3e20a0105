"""Reading TOML configuration and turning validation errors into ConfigError."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path, *, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"no {what} file here", where=str(path),
                          fix=f"check the path; a {what} is a TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", where=str(path),
                          fix="fix the syntax at the line and column given") from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file", where=str(path), expected="UTF-8 TOML") from None
    except RecursionError:
        raise ConfigError("arrays or tables nested too deeply to read", where=str(path),
                          fix="flatten the file; no setting nests more than a few levels") from None


def validate_model(model: type[M], data: dict, *, source: str) -> M:
    """Validate ``data`` against ``model``; the first error names the file and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                problems.append(f"{field}: unknown key")
            else:
                got = err.get("input")
                shown = "" if isinstance(got, dict) else f" (got {got!r})"
                problems.append(f"{field}: {err['msg']}{shown}")
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise ConfigError(
            "invalid configuration:\n    " + "\n    ".join(problems),
            where=source,
            expected=f"the fields documented for {model.__name__} (see targets/README.md)",
            fix=f"correct or remove: {', '.join(fields)}") from None
