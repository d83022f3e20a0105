"""A model's signature (input, outputs, softmax or not, the loss it was compiled with),
read from a tf_keras model and the file it came from."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from ..types import ModelSignature, OutputSignature


def ends_in_softmax(layer) -> bool:
    """True when ``layer`` (seen through tfmot wrappers) applies a softmax to its output."""
    while hasattr(layer, "layer"):  # pruning, clustering or quantization wrappers
        layer = layer.layer
    if type(layer).__name__ == "Softmax":
        return True
    activation = layer.get_config().get("activation")
    if isinstance(activation, dict):  # serialized activation
        activation = activation.get("config", {}).get("name") or activation.get("class_name")
    return activation == "softmax"


def keras_signature(model, saved_loss: Any = None) -> ModelSignature:
    """The signature of a tf_keras model; ``saved_loss`` is the compile config's ``loss``."""
    names = list(model.output_names)
    losses = losses_by_output(saved_loss, names)
    outputs = []
    for name, tensor in zip(names, model.outputs):
        layer = tensor._keras_history.layer if hasattr(tensor, "_keras_history") else model.get_layer(name)
        outputs.append(OutputSignature(name=name, shape=tuple(tensor.shape[1:]),
                                       probabilities=ends_in_softmax(layer), saved_loss=losses.get(name)))
    inp = model.inputs[0]
    return ModelSignature(input_shape=tuple(int(d) for d in inp.shape[1:]),
                          input_dtype=inp.dtype.name if hasattr(inp.dtype, "name") else str(inp.dtype),
                          outputs=tuple(outputs))


def losses_by_output(loss: Any, names: list[str]) -> dict[str, str]:
    """A compile config's ``loss`` (a name, a serialized loss, a list or a dict of those)
    as one name per output; outputs it does not cover are left out."""
    def name_of(value) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "class_name" in value:
            inner = value.get("config") if isinstance(value.get("config"), dict) else {}
            return inner.get("name") if value["class_name"] == "function" else value["class_name"]
        return None

    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: n for k, v in loss.items() if k in names and (n := name_of(v))}
    if isinstance(loss, (list, tuple)):
        return {k: n for k, v in zip(names, loss) if (n := name_of(v))}
    single = name_of(loss)
    return {k: single for k in names} if single else {}


def saved_loss(path: Path) -> Any:
    """The ``loss`` a .keras or .h5 file was compiled with, or None when it does not say."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as zf:
                config = json.loads(zf.read("config.json"))
            return (config.get("compile_config") or {}).get("loss")
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as fh:
                raw = fh.attrs.get("training_config")
            if raw is None:
                return None
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw).get("loss")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return None
