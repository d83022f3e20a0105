"""Import a user's ``module:function`` (a metric, a data loader), given on the command line
or through the Python API only: nothing read from a recipe, target or data file names code
to run.

``module`` is an importable module name (the current directory is searched first) or the
path of a ``.py`` file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import ConfigError


def import_callable(spec: str | Callable, *, what: str, where: str) -> tuple[Callable, str]:
    """(the function, its ``module:function`` name) for ``spec``; a callable passes through."""
    if callable(spec):
        name = f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', repr(spec))}"
        return spec, name
    module_name, sep, attr = str(spec).rpartition(":")
    if not sep or not module_name or not attr.isidentifier():
        raise ConfigError(f"{spec!r} does not name a function", where=where,
                          expected=f"MODULE:FUNCTION for the {what}, e.g. mypkg.data:load or loader.py:load")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ModuleNotFoundError(f"no file {path}")
            mod_spec = importlib.util.spec_from_file_location(f"edgeprune_user_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            added = os.getcwd() not in sys.path
            if added:
                sys.path.insert(0, os.getcwd())
            try:
                module = importlib.import_module(module_name)
            finally:
                if added:
                    sys.path.remove(os.getcwd())
    except Exception as exc:
        raise ConfigError(f"cannot import {module_name!r} for the {what}: {type(exc).__name__}: {exc}",
                          where=where, fix="check the module name, or pass a path: file.py:function") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{module_name!r} has no function {attr!r}", where=where,
                          expected=f"a callable for the {what}")
    return fn, f"{module_name}:{attr}"
