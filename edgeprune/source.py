"""Loading a user's model: tf_keras ``.keras``/``.h5`` files and SavedModel directories.

Everything that can be checked without deserialising anything is checked first:
a Keras 3 file, a truncated archive, and anything that would run code when
loaded (a Lambda layer, a custom class, a ``module`` to import, a SavedModel
graph op that calls Python or reaches files: see :mod:`edgeprune.scan`) is
refused with an InputError before tf_keras touches the file. After loading,
the weights must be finite.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from .errors import InputError
from .scan import CODE_FIX, scan_config, scan_savedmodel
from .types import SourceModel

KERAS3_FIX = ("save the Keras 3 model as a .keras file (model.save('model.keras')), which "
              "edgeprune reads through its Keras 3 bridge; or re-save it with tf_keras")


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
        _check_savedmodel_files(path)
        scan_savedmodel(path)
    elif path.suffix == ".keras":
        scan_config(_keras_zip_config(path), str(path))
    elif path.suffix in (".h5", ".hdf5"):
        scan_config(_h5_config(path), str(path))
    else:
        raise InputError(f"unknown model format {path.suffix!r}", where=str(path),
                         expected="a .keras or .h5 file saved by tf_keras, or a SavedModel directory")
    model = _load_with_tf_keras(path)
    source = describe(model, origin=str(path), sha256=file_digest(path))
    from .finite import check_loaded_weights

    check_loaded_weights(model, str(path))
    return source


def describe(model, *, origin: str, sha256: str, trained_here: bool = False) -> SourceModel:
    """Check the model has one static input and summarise it (its outputs are checked
    against the data by edgeprune.tasks)."""
    if model.inputs is None or len(model.inputs) != 1:
        raise InputError(f"the model has {len(model.inputs or [])} inputs", where=origin,
                         expected="a functional or Sequential model with one input",
                         fix="a subclassed model has no graph to compress: rebuild it with "
                             "keras.Input and the functional API, and save that")
    in_shape = tuple(model.inputs[0].shape[1:])
    out_shape = tuple(model.outputs[0].shape[1:])
    if any(d is None for d in in_shape):
        raise InputError(f"the input shape {in_shape} is not fully defined", where=origin,
                         expected="a static input shape apart from the batch dimension",
                         fix="build the model with keras.Input(shape=(...)) of fixed size")
    for layer in model.layers:  # the scan refused these before loading; a second line of defence
        kinds = {cls.__name__ for cls in type(layer).__mro__}
        if "Lambda" in kinds or kinds & {"RevivedLayer", "RevivedNetwork", "RevivedInputLayer"}:
            raise InputError(f"layer {layer.name!r} is a Lambda layer or was revived from a traced "
                             "graph", where=origin, expected="built-in tf_keras layers only", fix=CODE_FIX)
    return SourceModel(model=model, input_shape=tuple(int(d) for d in in_shape),
                       num_classes=int(out_shape[0] or 0) if len(out_shape) == 1 else 0,
                       origin=origin, sha256=sha256,
                       trained_here=trained_here)


def _keras_zip_config(path: Path) -> dict:
    config, meta = read_keras_archive(path)
    version = str(meta.get("keras_version", ""))
    if version.startswith("3"):
        raise InputError(f"this is a Keras {version} file; edgeprune compresses tf_keras (Keras 2) "
                         "models, and tf_keras cannot read Keras 3 files", where=str(path),
                         expected="a model saved by tf_keras 2.x", fix=KERAS3_FIX)
    return config


def read_keras_archive(path: Path) -> tuple[dict, dict]:
    """``config.json`` and ``metadata.json`` of a ``.keras`` archive, checked to be complete."""
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
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise InputError(f"corrupt or truncated .keras file ({exc})", where=str(path),
                         expected="a complete .keras archive", fix="save or copy the model again") from None
    if bad is not None:
        raise InputError(f"corrupt .keras file: member {bad!r} fails its checksum", where=str(path),
                         fix="save or copy the model again")
    if not isinstance(meta, dict) or not isinstance(config, dict):
        raise InputError("metadata.json or config.json is not a JSON object", where=str(path),
                         expected="a .keras file saved by model.save()", fix="save or copy the model again")
    return config, meta


def _h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            version = fh.attrs.get("keras_version", b"")
            raw = fh.attrs.get("model_config")
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError ... for damaged files
        raise InputError(f"corrupt or truncated .h5 file ({type(exc).__name__}: {exc})", where=str(path),
                         expected="an HDF5 file saved by tf_keras", fix="save or copy the model again") from None
    version = version.decode(errors="replace") if isinstance(version, bytes) else str(version)
    if version.startswith("3"):
        raise InputError(f"this is a Keras {version} file", where=str(path),
                         expected="a model saved by tf_keras 2.x", fix=KERAS3_FIX)
    if raw is None:
        raise InputError("the .h5 file holds weights but no model configuration", where=str(path),
                         expected="a whole model saved with model.save('model.h5')")
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, RecursionError) as exc:
        raise InputError(f"the model configuration is not valid JSON ({exc})", where=str(path),
                         fix="save or copy the model again") from None
    if not isinstance(config, dict):
        raise InputError("the model configuration is not a JSON object", where=str(path),
                         fix="save or copy the model again")
    return config


def _check_savedmodel_files(path: Path) -> None:
    if not (path / "saved_model.pb").is_file():
        raise InputError("this directory is not a SavedModel (no saved_model.pb)", where=str(path),
                         expected="a directory written by model.save(DIR) or tf.saved_model.save")
    if not (path / "keras_metadata.pb").is_file():
        raise InputError("this SavedModel has no Keras metadata", where=str(path),
                         expected="a SavedModel written from a tf_keras model (model.save(DIR))",
                         fix="save the tf_keras model itself, not a tf.Module or a Keras 3 export")


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
                         fix="save or copy the model again with tf_keras' model.save()") from None
