"""Every fix an error message gives names a command, a flag and a recipe field that exist.

The walk reads edgeprune/ with ``ast``: every string given as ``fix=`` (or assigned to
``fix`` or a ``*_FIX`` constant), f-strings included; the commands it names in backticks
(`edgeprune check ...`) must be in the click tree, its ``--flags`` options of that
command (or of any command when none is named), and its ``recipe.x.y`` / ``prune.x``
fields of the recipe. Any backticked `edgeprune ...` command anywhere in the
package's strings must exist too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from edgeprune.cli import cli
from edgeprune.recipe import PruneSpec, Recipe

PACKAGE = Path(__file__).resolve().parents[2] / "edgeprune"
COMMAND = re.compile(r"`edgeprune ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?([^`]*)`")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
FIELD = re.compile(r"\b(recipe|prune)\.([a-z_]+)(?:\.([a-z_]+))?")
SCRIPT = re.compile(r"python (?:-m ([\w.]+)|([\w./-]+\.py))((?: --?[a-z][\w-]*(?: [A-Z]+)?)*)")


def _script_problems(text: str) -> tuple[str, list[str]]:
    """``python -m module --flag`` / ``python path.py --flag``: the script exists and
    parses that flag; returns the text without those commands and what is wrong."""
    out = []
    for module, path, flags in SCRIPT.findall(text):
        source = (PACKAGE.parent / (module.replace(".", "/") + ".py")) if module \
            else PACKAGE.parent / path
        if module and not source.is_file():   # a package run with -m: its __main__.py
            source = PACKAGE.parent / module.replace(".", "/") / "__main__.py"
        if not source.is_file():
            out.append(f"python {module or path}: no such script")
            continue
        body = source.read_text()
        out.extend(f"{flag} is not an option of {source.name}" for flag in FLAG.findall(flags)
                   if f'"{flag}"' not in body)
    return SCRIPT.sub("", text), out


def _text(node) -> str | None:
    """A string constant, an f-string (placeholders as {}) or a concatenation of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.IfExp):
        return " | ".join(t for t in (_text(node.body), _text(node.orelse)) if t)
    return None


def fixes_and_strings() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    fixes, strings = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "fix":
                text = _text(node.value)
                if text:
                    fixes.append((f"{where}:{node.value.lineno}", text))
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name) \
                    and (node.targets[0].id == "fix" or node.targets[0].id.endswith("_FIX")):
                text = _text(node.value)
                if text:
                    fixes.append((f"{where}:{node.lineno}", text))
            text = _text(node) if isinstance(node, (ast.Constant, ast.JoinedStr)) else None
            if text and "`edgeprune " in text:
                strings.append((f"{where}:{getattr(node, 'lineno', 0)}", text))
    return fixes, strings


def _command(words: list[str]) -> click.Command | None:
    command: click.Command = cli
    for word in words:
        if not isinstance(command, click.Group) or word not in command.commands:
            return None
        command = command.commands[word]
    return command


def _options(command: click.Command) -> set[str]:
    out = set()
    for param in command.params:
        out.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            out |= _options(sub)
    return out


def _field_exists(section: str, name: str, sub: str | None) -> bool:
    model = Recipe if section == "recipe" else PruneSpec
    if name not in model.model_fields:
        return False
    if sub is None:
        return True
    inner = model.model_fields[name].annotation
    candidates = [a for a in getattr(inner, "__args__", (inner,)) if hasattr(a, "model_fields")]
    return any(sub in a.model_fields for a in candidates)


def problems_in(text: str, *, is_fix: bool) -> list[str]:
    """What in ``text`` names something that does not exist."""
    text, out = _script_problems(text)
    named = False
    for match in COMMAND.finditer(text):
        words = [w for w in match.groups()[:2] if w]
        command = _command(words) or _command(words[:1])
        if command is None:
            out.append(f"`edgeprune {' '.join(words)}` is not a command")
            continue
        named = True
        for flag in FLAG.findall(match.group(3) or ""):
            if flag not in _options(command):
                out.append(f"{flag} is not an option of `edgeprune {command.name}`")
    if is_fix:
        if not named:
            known = _options(cli)
            out.extend(f"{flag} is not an option of any command" for flag in FLAG.findall(text)
                       if flag not in known)
        for section, name, sub in FIELD.findall(text):
            if not _field_exists(section, name, sub or None):
                out.append(f"{section}.{name}{'.' + sub if sub else ''} is not a recipe field")
    return out


def test_the_walk_finds_the_fixes_it_checks():
    fixes, strings = fixes_and_strings()
    assert len(fixes) > 50
    assert any("`edgeprune prepare-emulator --force`" in text for _, text in fixes)
    assert any("recipe.tflite_sparse_encoding" in text for _, text in fixes)


def test_the_checker_catches_a_command_flag_or_field_that_does_not_exist():
    assert problems_in("see `edgeprune models`", is_fix=True) == ["`edgeprune models` is not a command"]
    assert problems_in("run `edgeprune check R --rebase`", is_fix=True) == \
        ["--rebase is not an option of `edgeprune check`"]
    assert problems_in("pass --datta FILE", is_fix=True) == ["--datta is not an option of any command"]
    assert problems_in("set recipe.onnx_quant.reduced", is_fix=True) == \
        ["recipe.onnx_quant.reduced is not a recipe field"]
    assert problems_in("run `edgeprune targets show NAME` or set prune.per_layer", is_fix=True) == []
    assert problems_in("run `python -m edgeprune.devices.cost.fit --recount`", is_fix=True) == []
    assert problems_in("run python benchmarks/mcu.py --fitt", is_fix=True) == \
        ["--fitt is not an option of mcu.py"]


@pytest.mark.parametrize("kind", ["fix", "string"])
def test_every_fix_names_commands_flags_and_fields_that_exist(kind):
    fixes, strings = fixes_and_strings()
    items = fixes if kind == "fix" else strings
    found = [f"{where}: {problem}" for where, text in items
             for problem in problems_in(text, is_fix=kind == "fix")]
    assert found == []
