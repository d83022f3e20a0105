"""Rebuild a Keras 3 model in tf_keras, layer by layer, from its saved configuration.

Keras 3 and tf_keras share most built-in layers (Conv*, Dense, DepthwiseConv2D,
SeparableConv2D, BatchNormalization, LayerNormalization, pooling, padding, Add,
Concatenate, Reshape, Dropout, Embedding, MultiHeadAttention, activations...). Each
layer's config is translated (DTypePolicy -> its name; initializers dropped, since the
weights are copied; ``LeakyReLU.negative_slope`` -> ``alpha``; Keras 3 settings that are
off by default, such as ``lora_rank = None``, dropped) and the graph is called again
node by node, so shared layers and nested models keep their structure. Anything else
raises :class:`Unmappable` naming the layer and why: a Keras 3 setting that is on, a
layer class tf_keras lacks, a ``keras.ops`` call in the graph, an activation whose
definition differs (``hard_sigmoid``, ``hard_silu``).

The rebuilt model is not trusted: :mod:`edgeprune.sources.keras3` compares its outputs
with Keras 3's on the test inputs before any work.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterator

_BASE_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape",
                "batch_input_shape", "batch_size", "weights", "activity_regularizer", "autocast"}
_RENAMES = {"LeakyReLU": {"negative_slope": "alpha"}}
#: Keys tf_keras' from_config requires and Keras 3 does not save (built on the first call).
_REQUIRED = {"MultiHeadAttention": {"query_shape": None, "key_shape": None, "value_shape": None}}
#: Keras 3 activations missing from tf_keras, or defined differently there.
_ACTIVATIONS_DIFFER = {
    "hard_sigmoid": "Keras 3 computes relu6(x + 3) / 6, tf_keras 0.2 x + 0.5 clipped",
    "hard_silu": "tf_keras has no hard_silu", "hard_swish": "tf_keras has no hard_swish",
    "celu": "tf_keras has no celu", "glu": "tf_keras has no glu", "squareplus": "tf_keras has no squareplus",
    "sparse_plus": "tf_keras has no sparse_plus", "soft_shrink": "tf_keras has no soft_shrink",
    "hard_shrink": "tf_keras has no hard_shrink", "tanh_shrink": "tf_keras has no tanh_shrink",
    "sparsemax": "tf_keras has no sparsemax", "threshold": "tf_keras has no threshold activation",
}
_MODELS = ("Functional", "Sequential", "Model")


class Unmappable(Exception):
    """A part of the Keras 3 model that has no faithful tf_keras equivalent."""

    def __init__(self, layer: str, class_name: str, why: str):
        super().__init__(f"layer {layer!r} ({class_name}): {why}")
        self.layer, self.class_name, self.why = layer, class_name, why


def walk_layers(model, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, layer)`` for every layer, descending into nested models (``outer/inner``)."""
    for layer in model.layers:
        if type(layer).__name__ in _MODELS or hasattr(layer, "layers") and hasattr(layer, "inputs"):
            yield from walk_layers(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


def build(config: dict, keras):
    """The tf_keras model for a Keras 3 model config (``config.json`` of a ``.keras`` file)."""
    cls = config.get("class_name")
    if cls == "Sequential":
        return _sequential(config, keras)
    if cls in ("Functional", "Model"):
        return _functional(config, keras)
    name = (config.get("config") or {}).get("name", "?")
    raise Unmappable(name, str(cls), "a subclassed model has no saved graph to rebuild")


def _input(entry: dict, keras):
    cfg = entry["config"]
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if cfg.get("sparse") or cfg.get("ragged"):
        raise Unmappable(cfg.get("name", "?"), "InputLayer", "sparse or ragged inputs")
    return keras.Input(batch_shape=tuple(shape), dtype=cfg.get("dtype") or "float32", name=cfg.get("name"))


def _sequential(config: dict, keras):
    cfg = config["config"]
    entries = list(cfg["layers"])
    if entries and entries[0]["class_name"] == "InputLayer":
        inp = _input(entries.pop(0), keras)
    elif cfg.get("build_input_shape"):
        inp = keras.Input(batch_shape=tuple(cfg["build_input_shape"]))
    else:
        raise Unmappable(cfg.get("name", "?"), "Sequential", "no input shape was saved (never built)")
    layers = [_nested(e, keras) if e["class_name"] in _MODELS else make_layer(e, keras) for e in entries]
    return keras.Sequential([inp, *layers], name=cfg.get("name"))


def _nested(entry: dict, keras):
    return build(entry, keras)


def _flat_refs(refs) -> list[tuple]:
    """``input_layers``/``output_layers`` as a flat list of (layer, node, tensor); a dict in
    sorted key order, as Keras 3 flattens it."""
    if isinstance(refs, dict):
        return [r for key in sorted(refs) for r in _flat_refs(refs[key])]
    if refs and isinstance(refs[0], str):
        return [tuple(refs)]
    return [r for item in refs for r in _flat_refs(item)]


def _functional(config: dict, keras):
    cfg = config["config"]
    tensors: dict[tuple, Any] = {}
    pending = []
    for entry in cfg["layers"]:
        if entry["class_name"] == "InputLayer":
            tensors[(entry["name"], 0, 0)] = _input(entry, keras)
        else:
            layer = _nested(entry, keras) if entry["class_name"] in _MODELS else make_layer(entry, keras)
            pending += [(entry, layer, i, node) for i, node in enumerate(entry.get("inbound_nodes", []))]
    while pending:
        ready = [p for p in pending if _resolvable(p[3], tensors)]
        if not ready:
            entry = pending[0][0]
            raise Unmappable(entry["name"], entry["class_name"], "its inputs cannot be resolved in the graph")
        for item in ready:
            entry, layer, index, node = item
            args = _resolve(node.get("args", []), tensors)
            kwargs = {k: v for k, v in _resolve(node.get("kwargs", {}), tensors).items() if v is not None}
            try:
                out = layer(*args, **kwargs)
            except Exception as exc:
                raise Unmappable(entry["name"], entry["class_name"],
                                 f"tf_keras cannot call it as saved: {str(exc).splitlines()[0][:200]}") from None
            outs = out if isinstance(out, (list, tuple)) else [out]
            for j, tensor in enumerate(outs):
                tensors[(entry["name"], index, j)] = tensor
            pending.remove(item)
    inputs = [tensors[tuple(r)] for r in _flat_refs(cfg["input_layers"])]
    outputs = [tensors[tuple(r)] for r in _flat_refs(cfg["output_layers"])]
    return keras.Model(inputs=inputs if len(inputs) > 1 else inputs[0],
                       outputs=outputs if len(outputs) > 1 else outputs[0], name=cfg.get("name"))


def _is_tensor_ref(value) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _resolvable(node: dict, tensors: dict) -> bool:
    def ok(value) -> bool:
        if _is_tensor_ref(value):
            return tuple(value["config"]["keras_history"]) in tensors
        if isinstance(value, dict):
            return all(ok(v) for v in value.values())
        if isinstance(value, list):
            return all(ok(v) for v in value)
        return True

    return ok(node.get("args", [])) and ok(node.get("kwargs", {}))


def _resolve(value, tensors: dict):
    if _is_tensor_ref(value):
        return tensors[tuple(value["config"]["keras_history"])]
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, tensors) for v in value]
    return value


def make_layer(entry: dict, keras):
    """One tf_keras layer from a Keras 3 layer entry."""
    cls, name = entry["class_name"], entry.get("name") or entry["config"].get("name", "?")
    module = entry.get("module") or ""
    if entry.get("registered_name") or module.startswith("keras.src.ops") or not module.startswith("keras"):
        what = ("a keras.ops call in the functional graph (tf_keras has no layer for it)"
                if module.startswith("keras.src.ops") else f"a custom class from module {module!r}")
        raise Unmappable(name, cls, what)
    layer_cls = getattr(keras.layers, cls, None)
    if layer_cls is None or cls in ("Lambda", "TFSMLayer"):
        raise Unmappable(name, cls, "tf_keras has no such built-in layer")
    config = translate_config(cls, name, entry["config"], layer_cls)
    try:
        return layer_cls.from_config(config)
    except Exception as exc:
        raise Unmappable(name, cls, f"tf_keras rejects its config: {str(exc).splitlines()[0][:200]}") from None


def translate_config(cls: str, name: str, config: dict, layer_cls) -> dict:
    accepted = set(_BASE_KWARGS)
    for klass in layer_cls.__mro__:  # a subclass passes **kwargs on to its bases' __init__
        if "__init__" in vars(klass) and klass is not object:
            accepted |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "kwargs")}
    renames = _RENAMES.get(cls, {})
    out = {}
    for key, value in config.items():
        key = renames.get(key, key)
        if key.endswith("_initializer"):
            continue  # weights are copied; tf_keras' defaults serve any later rebuild
        if key not in accepted:
            if value in (None, False, {}, []):
                continue
            raise Unmappable(name, cls, f"the Keras 3 setting {key} = {value!r} has no tf_keras equivalent")
        out[key] = _value(cls, name, key, value)
    return {**_REQUIRED.get(cls, {}), **out}


def _value(cls: str, name: str, key: str, value):
    if key == "dtype" and isinstance(value, dict):
        return (value.get("config") or {}).get("name", "float32")
    if key == "activation":
        if isinstance(value, dict):
            raise Unmappable(name, cls, "a custom activation function")
        if value in _ACTIVATIONS_DIFFER:
            raise Unmappable(name, cls, f"activation {value!r}: {_ACTIVATIONS_DIFFER[value]}")
        return value
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        if value.get("registered_name"):
            raise Unmappable(name, cls, f"{key} is a custom {value['class_name']}")
        return {"class_name": value["class_name"],
                "config": {k: _value(cls, name, k, v) for k, v in value["config"].items()}}
    if isinstance(value, list):
        return [_value(cls, name, key, v) for v in value]
    return value
