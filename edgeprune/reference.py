"""Reference models in ``models/<name>/``: a definition, a data loader, a recipe.

A reference model is trained with a fixed seed the first time it is used and
cached in the user cache directory (``$EDGEPRUNE_CACHE`` overrides it); the
cache key covers the definition's source, the seed and the library versions,
so an edit retrains and a second run does not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType

from .data import array_digest
from .errors import InputError
from .types import Dataset, SourceModel

DEFAULT_MODEL = "digits"


def models_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "models"


def cache_dir() -> Path:
    env = os.environ.get("EDGEPRUNE_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgeprune"))


def available() -> list[str]:
    root = models_dir()
    return sorted(p.parent.name for p in root.glob("*/model.py")) if root.is_dir() else []


def is_reference(name: str) -> bool:
    return name in available()


def _module(name: str) -> ModuleType:
    path = models_dir() / name / "model.py"
    if not path.is_file():
        raise InputError(f"no reference model named {name!r}", where=str(models_dir()),
                         expected=f"one of: {', '.join(available())}")
    spec = importlib.util.spec_from_file_location(f"edgeprune_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recipe_path(name: str, target: str | None = None) -> Path | None:
    """The reference model's own recipe: ``recipes/TARGET.toml`` where a search chose one for
    that target (the file's header and ``recipes/TARGET.search.json`` record the search),
    else ``recipe.toml``."""
    folder = models_dir() / name
    if target is not None and (folder / "recipes" / f"{target}.toml").is_file():
        return folder / "recipes" / f"{target}.toml"
    path = folder / "recipe.toml"
    return path if path.is_file() else None


def load_data(name: str) -> Dataset:
    module = _module(name)
    a = module.load_arrays()
    return Dataset(x_train=a["x_train"], y_train=a["y_train"], x_val=a["x_val"], y_val=a["y_val"],
                   x_test=a["x_test"], y_test=a["y_test"], num_classes=module.NUM_CLASSES,
                   source=f"models/{name} (reference loader)",
                   sha256=array_digest(*(a[k] for k in sorted(a))))


def load_model(name: str, *, seed: int, epochs: int | None = None, log=lambda msg: None) -> SourceModel:
    """The trained reference model, from the cache or trained now (and cached)."""
    from . import keras_env
    from .source import describe, file_digest

    module = _module(name)
    epochs = module.EPOCHS if epochs is None else epochs
    source = (models_dir() / name / "model.py").read_bytes()
    key = hashlib.sha256(b"\0".join([
        source, str(seed).encode(), str(epochs).encode(),
        metadata.version("tf-keras").encode(), metadata.version("tensorflow").encode()])).hexdigest()[:16]
    path = cache_dir() / "models" / f"{name}-{key}.keras"
    keras = keras_env.keras()
    trained_here = False
    if path.is_file():
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception:
            path.unlink(missing_ok=True)  # a damaged cache entry: train again
    if not path.is_file():
        log(f"training reference model {name!r} ({epochs} epochs, seed {seed}); cached afterwards")
        keras_env.set_seed(seed)
        model = module.build(keras)
        module.train(model, module.load_arrays(), keras, epochs=epochs)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".keras", dir=path.parent)
        os.close(fd)
        model.save(tmp)
        os.replace(tmp, path)
        model = keras.models.load_model(path, compile=False, safe_mode=True)
        trained_here = True
    return describe(model, origin=f"models/{name}", sha256=file_digest(path), trained_here=trained_here)
