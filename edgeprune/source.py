"""Loading a user's model: tf_keras ``.keras``/``.h5`` files and SavedModel directories.

Everything that can be checked without deserialising code is checked first: a
Keras 3 file, a truncated archive, or a Lambda layer (arbitrary Python, unsafe
to load) is refused with an InputError before tf_keras touches it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from .errors import InputError
from .types import SourceModel

KERAS3_FIX = ("re-save the model with tf_keras (Keras 2): build and train it with "
              "`import tf_keras as keras`, or export a SavedModel with "
              "`tf.saved_model.save` from a tf_keras model")
LAMBDA_FIX = ("replace each Lambda layer with a built-in layer or a registered custom "
              "layer class, re-save, and export again")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_model_file(path: str | Path) -> SourceModel:
    path = Path(path)
    if not path.exists():
        from .reference import available

        raise InputError("no model file or directory here", where=str(path),
                         fix="pass a .keras or .h5 file, a SavedModel directory, or the name of a "
                             f"reference model in models/: {', '.join(available()) or '(none)'}")
    if path.is_dir():
        config = _savedmodel_config(path)
    elif path.suffix == ".keras":
        config = _keras_zip_config(path)
    elif path.suffix in (".h5", ".hdf5"):
        config = _h5_config(path)
    else:
        raise InputError(f"unknown model format {path.suffix!r}", where=str(path),
                         expected="a .keras or .h5 file saved by tf_keras, or a SavedModel directory")
    if config is not None:
        _refuse_lambda(config, str(path))
    model = _load_with_tf_keras(path)
    return describe(model, origin=str(path), sha256=file_digest(path))


def describe(model, *, origin: str, sha256: str, trained_here: bool = False) -> SourceModel:
    """Check the model is a single-input, single-output classifier and summarise it."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs",
                         where=origin, expected="one input and one output (a classifier)")
    in_shape = tuple(model.inputs[0].shape[1:])
    out_shape = tuple(model.outputs[0].shape[1:])
    if any(d is None for d in in_shape):
        raise InputError(f"the input shape {in_shape} is not fully defined", where=origin,
                         expected="a static input shape apart from the batch dimension",
                         fix="build the model with keras.Input(shape=(...)) of fixed size")
    if len(out_shape) != 1 or out_shape[0] is None or out_shape[0] < 2:
        raise InputError(f"the output shape is {out_shape}", where=origin,
                         expected="(num_classes,) scores or probabilities, num_classes >= 2")
    for layer in model.layers:
        if type(layer).__name__ == "Lambda":
            raise InputError(f"layer {layer.name!r} is a Lambda layer", where=origin,
                             expected="built-in or registered layers only", fix=LAMBDA_FIX)
    return SourceModel(model=model, input_shape=tuple(int(d) for d in in_shape),
                       num_classes=int(out_shape[0]), origin=origin, sha256=sha256,
                       trained_here=trained_here)


def _keras_zip_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise InputError("the archive has no config.json", where=str(path),
                                 expected="a .keras file saved by model.save()")
            meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
            config = json.loads(zf.read("config.json"))
            bad = zf.testzip()
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(f"corrupt or truncated .keras file ({exc})", where=str(path),
                         expected="a complete .keras archive", fix="save or copy the model again") from None
    if bad is not None:
        raise InputError(f"corrupt .keras file: member {bad!r} fails its checksum", where=str(path),
                         fix="save or copy the model again")
    version = str(meta.get("keras_version", ""))
    if version.startswith("3"):
        raise InputError(f"this is a Keras {version} file; edgeprune compresses tf_keras (Keras 2) "
                         "models, and tf_keras cannot read Keras 3 files", where=str(path),
                         expected="a model saved by tf_keras 2.x", fix=KERAS3_FIX)
    return config


def _h5_config(path: Path) -> dict | None:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            version = fh.attrs.get("keras_version", b"")
            raw = fh.attrs.get("model_config")
    except OSError as exc:
        raise InputError(f"corrupt or truncated .h5 file ({exc})", where=str(path),
                         expected="an HDF5 file saved by tf_keras", fix="save or copy the model again") from None
    version = version.decode() if isinstance(version, bytes) else str(version)
    if version.startswith("3"):
        raise InputError(f"this is a Keras {version} file", where=str(path),
                         expected="a model saved by tf_keras 2.x", fix=KERAS3_FIX)
    if raw is None:
        raise InputError("the .h5 file holds weights but no model configuration", where=str(path),
                         expected="a whole model saved with model.save('model.h5')")
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _savedmodel_config(path: Path) -> dict | None:
    if not (path / "saved_model.pb").is_file():
        raise InputError("this directory is not a SavedModel (no saved_model.pb)", where=str(path),
                         expected="a directory written by model.save(DIR) or tf.saved_model.save")
    if not (path / "keras_metadata.pb").is_file():
        raise InputError("this SavedModel has no Keras metadata", where=str(path),
                         expected="a SavedModel written from a tf_keras model (model.save(DIR))",
                         fix="save the tf_keras model itself, not a tf.Module or a Keras 3 export")
    return None  # layers are checked after loading (a SavedModel holds traced graphs, not code)


def _refuse_lambda(config: dict, where: str) -> None:
    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                name = (node.get("config") or {}).get("name", "?")
                raise InputError(f"layer {name!r} is a Lambda layer, which holds Python code that "
                                 "is unsafe to deserialise", where=where,
                                 expected="built-in or registered layers only", fix=LAMBDA_FIX)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)


def _load_with_tf_keras(path: Path):
    from . import keras_env

    keras = keras_env.keras()
    try:
        if path.suffix == ".keras":
            return keras.models.load_model(path, compile=False, safe_mode=True)
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # tf_keras raises many types for bad files
        raise InputError(f"tf_keras could not load the model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})", where=str(path),
                         expected="a model saved by tf_keras 2.x with built-in layers",
                         fix="custom layers must be registered with "
                             "keras.saving.register_keras_serializable; re-save the model") from None
