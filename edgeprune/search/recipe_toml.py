"""A recipe written as a TOML file that ``edgeprune export --recipe FILE`` reads back
to the same recipe.

Every top-level key is written (a recipe file's keys replace the target's whole
sections, so a complete file does not depend on the target's defaults). TOML has no
null: a step that is off (``prune``, ``regularize``, ``cluster``, ``qat``) is written
``false``, which the recipe reads as off, and an unset optional value is left out, which
the recipe reads as its default. A value that cannot be written so (None where the
default is not None) is caught by reading the file back: :func:`write_recipe` refuses
to write a file that would not reproduce the recipe.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import ConfigError
from ..recipe import Recipe, load_recipe

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_OFF = ("prune", "regularize", "cluster", "qat")


def dumps(recipe: Recipe, header: str = "") -> str:
    """The TOML text of ``recipe``: scalars and arrays first, then one table per section."""
    data = recipe.model_dump(mode="json")
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    tables = []
    for key, value in data.items():
        if value is None and key in _OFF:
            lines.append(f"{_key(key)} = false")
        elif value is None:
            continue
        elif isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, table in tables:
        lines.append("")
        lines.append(f"[{_key(key)}]")
        for sub, value in table.items():
            if value is not None:
                lines.append(f"{_key(sub)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def write_recipe(recipe: Recipe, path: Path, header: str = "") -> None:
    """Write ``recipe`` to ``path`` and read it back; a file that would not give the
    same recipe is never left behind (the search's reproduction guarantee)."""
    path = Path(path)
    path.write_text(dumps(recipe, header), encoding="utf-8")
    again = load_recipe(path)
    if again != recipe:
        path.unlink()
        diff = [k for k in Recipe.model_fields if getattr(again, k) != getattr(recipe, k)]
        raise ConfigError(f"the recipe cannot be written as TOML that reads back the same "
                          f"(differs in {', '.join(diff)})", where=str(path),
                          fix="set these fields to values TOML can hold (not none where the "
                              "default is a value)")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)               # shortest text that reads back to the same float
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)         # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()
                                if v is not None) + " }" if value else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")  # a bug: recipes hold no others
