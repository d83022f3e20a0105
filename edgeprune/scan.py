"""Refusing model files that carry code, before anything in them is deserialised.

A Keras model file is data that tf_keras turns back into Python objects, and
several parts of it can make that run code on this machine:

- a ``Lambda`` layer holds marshalled Python bytecode (``.h5``, SavedModel
  metadata) or a serialised lambda (``__lambda__``);
- a ``module`` key makes tf_keras import that module (any module on
  ``sys.path``, including a file in the current directory) and take a class or
  function from it;
- ``TFOpLambda`` layers call a TensorFlow API function named in the file
  (``io.write_file`` would do);
- a layer whose class tf_keras does not know is revived from a SavedModel by
  executing its traced graph, which can hold ops that call Python
  (``PyFunc``) or touch files (``WriteFile``, ``ReadFile``, ``MatchingFiles``).

So only built-in tf_keras classes are accepted, ``module`` must name tf_keras,
TF functions come from an allow-list of array maths, and a SavedModel's graphs
must not contain I/O or Python ops (its own checkpoint save/restore functions
excepted, and only where the SavedModel's saver uses them). Everything here
reads JSON and protobuf messages: nothing is revived.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from .errors import InputError

CODE_FIX = ("rebuild the model from built-in tf_keras layers only (no Lambda, no custom or "
            "unregistered classes), re-save it with model.save(), and export again")
EXPECTED = "built-in tf_keras layers and objects only"

# JSON markers tf_keras writes for values that are not Keras objects.
_MARKERS = {"__tuple__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__typespec__",
            "TensorShape", "TypeSpec", "CompositeTensor", "InputSpec", "function"}
_CODE_CLASSES = {"Lambda", "__lambda__"}
_OP_LAMBDAS = {"TFOpLambda", "SlicingOpLambda"}
# Subtrees tf_keras does not deserialise when loading with compile=False (as edgeprune does).
_COMPILE_KEYS = {"compile_config", "training_config", "optimizer_config"}
_MODULE = re.compile(r"(tf_)?keras(\.[A-Za-z_][A-Za-z0-9_]*)*")

# TensorFlow functions a TFOpLambda may call: array maths, nothing that reaches files,
# Python or the network.
_TF_NAMESPACES = {"math", "nn", "linalg", "__operators__", "image", "signal", "bitwise"}
_TF_FUNCTIONS = set("""
abs add add_n argmax argmin argsort boolean_mask broadcast_to cast clip_by_norm clip_by_value
concat cos cosh cumsum divide einsum equal exp expand_dims eye fill floor floordiv gather
gather_nd greater greater_equal identity less less_equal logical_and logical_not logical_or
matmul maximum minimum multiply negative not_equal one_hot ones ones_like pad pow range rank
realdiv reduce_all reduce_any reduce_logsumexp reduce_max reduce_mean reduce_min reduce_prod
reduce_std reduce_sum reduce_variance repeat reshape reverse round rsqrt scatter_nd shape sigmoid
sign sin sinh size slice sort split sqrt square squeeze stack stop_gradient strided_slice
subtract tan tanh tensordot tile transpose truediv truncatediv unstack where zeros zeros_like
""".split())

# Graph ops that call Python or reach files, the network or a debugger.
_PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
_DENIED_OPS = re.compile(
    r".*(File|Reader|Writer|Summary|Dataset|Iterator|Debug|Print|Save|Restore|Checkpoint|Sharded"
    r"|Rpc|Gcs|BigQuery|Bigtable|Collective|Nccl|TPU|Tpu|Snapshot|Remap|Proto|Sql|LMDB|Lmdb"
    r"|ImmutableConst).*|_?(Host)?(Send|Recv)")
_CHECKPOINT_OPS = {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"}
_IDENTIFIERS = {"_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_network", "_tf_keras_model",
                "_tf_keras_sequential", "_tf_keras_metric", "_tf_keras_rnn_layer"}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}


@lru_cache(maxsize=None)
def builtin_names() -> frozenset[str]:
    """Class names of tf_keras' public layers, initializers, regularizers, constraints,
    metrics, losses and activations (Lambda left out)."""
    from . import keras_env

    k = keras_env.keras()
    names = set(_MODEL_CLASSES)
    for mod in (k.layers, k.initializers, k.regularizers, k.constraints, k.metrics, k.losses,
                k.activations, k.mixed_precision, k.layers.experimental.preprocessing):
        names.update(n for n in dir(mod) if not n.startswith("_") and isinstance(getattr(mod, n), type))
    from tf_keras.src.layers import serialization  # the registry tf_keras revives layers from

    serialization.populate_deserializable_objects()
    names.update(serialization.LOCAL.ALL_OBJECTS)
    return frozenset(names - _CODE_CLASSES)


# ---------------------------------------------------------------- Keras configs

def scan_config(config, where: str) -> None:
    """Refuse a tf_keras model config (``.keras`` config.json, ``.h5`` model_config, or a
    SavedModel's layer metadata) that would run code when deserialised."""
    try:
        _walk(config, where, "", strict=True)
    except RecursionError:
        raise InputError("the model configuration is nested too deeply to check", where=where,
                         expected="a configuration written by tf_keras", fix="save or copy the model again") from None


def _walk(node, where: str, path: str, strict: bool) -> None:
    if isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, where, f"{path}[{i}]", strict)
        return
    if not isinstance(node, dict):
        return
    _check_object(node, where, path, strict)
    for key, value in node.items():
        _walk(value, where, f"{path}.{key}" if path else str(key), strict and key not in _COMPILE_KEYS)


def _check_object(node: dict, where: str, path: str, strict: bool) -> None:
    class_name = node.get("class_name")
    name = _name_of(node, path)
    if "module" in node:
        module = node["module"]
        if module is not None and not (isinstance(module, str) and _MODULE.fullmatch(module)):
            _refuse(f"{name} names module {module!r}, which tf_keras would import (running "
                    "its code) to find the class", where)
    if not isinstance(class_name, str):
        if "vocabulary" in node and isinstance(node["vocabulary"], str):
            _refuse(f"{name} reads its vocabulary from the file {node['vocabulary']!r} when loaded", where)
        return
    if class_name in _CODE_CLASSES:
        _refuse(f"{name} is a {class_name} layer, which holds Python code that would run "
                "when the model is loaded", where)
    if class_name in _OP_LAMBDAS:
        function = (node.get("config") or {}).get("function")
        if not _tf_function_allowed(function):
            _refuse(f"{name} calls the TensorFlow function {function!r}, which is not array "
                    "maths (it could reach files or Python)", where)
    if class_name == "function" and node.get("module") not in (None, "builtins") \
            and not _MODULE.fullmatch(str(node.get("module"))):
        _refuse(f"{name} names a function from module {node.get('module')!r}", where)
    registered = node.get("registered_name")
    if strict and class_name not in _MARKERS and class_name not in builtin_names():
        _refuse(f"{name} has class {class_name!r}, which is not a built-in tf_keras class "
                "(a custom class would be revived from code or traced graphs in the file)", where)
    if strict and isinstance(registered, str) and registered not in (class_name, "") \
            and registered not in builtin_names():
        _refuse(f"{name} has the registered name {registered!r}, a custom class", where)


def _name_of(node: dict, path: str) -> str:
    config = node.get("config")
    label = config.get("name") if isinstance(config, dict) else None
    label = label if isinstance(label, str) else node.get("name")
    return f"layer {label!r}" if isinstance(label, str) else f"config entry {path or '(root)'}"


def _tf_function_allowed(function) -> bool:
    if not isinstance(function, str):
        return False
    name = re.sub(r"^compat\.v[12]\.", "", function)
    head = name.split(".")[0]
    if "." in name:
        return head in _TF_NAMESPACES and "print" not in name.lower()
    return name in _TF_FUNCTIONS


def _refuse(what: str, where: str) -> None:
    raise InputError(what, where=where, expected=EXPECTED, fix=CODE_FIX)


# ---------------------------------------------------------------- SavedModel

def scan_savedmodel(path: Path) -> None:
    """Refuse a SavedModel whose Keras metadata or graphs could run code when loaded."""
    where = str(path)
    for node_id, identifier, metadata in _metadata_nodes(path / "keras_metadata.pb", where):
        if identifier not in _IDENTIFIERS:
            _refuse(f"object {node_id} is a {identifier!r}, not a tf_keras layer or model", where)
        class_name = metadata.get("class_name")
        if identifier in ("_tf_keras_model", "_tf_keras_network") and class_name not in _MODEL_CLASSES:
            _refuse(f"the model class {class_name!r} is a subclassed model, which tf_keras "
                    "revives by running the traced graphs in the file", where)
        scan_config(metadata, where)
    _scan_graphs(path / "saved_model.pb", where)


def _metadata_nodes(path: Path, where: str) -> Iterator[tuple[int, str, dict]]:
    from . import keras_env

    keras_env.keras()
    from tf_keras.protobuf import saved_metadata_pb2

    meta = _parse(saved_metadata_pb2.SavedMetadata(), path, where)
    for node in meta.nodes:
        try:
            metadata = json.loads(node.metadata) if node.metadata else {}
        except (ValueError, RecursionError) as exc:
            raise InputError(f"corrupt layer metadata of object {node.node_id} ({exc})", where=where,
                             fix="save or copy the model again") from None
        if not isinstance(metadata, dict):
            raise InputError(f"layer metadata of object {node.node_id} is not a JSON object",
                             where=where, fix="save or copy the model again")
        yield node.node_id, node.identifier, metadata


def _scan_graphs(path: Path, where: str) -> None:
    from . import keras_env

    keras_env.tf()
    from tensorflow.core.protobuf import saved_model_pb2

    for meta_graph in _parse(saved_model_pb2.SavedModel(), path, where).meta_graphs:
        _scan_meta_graph(meta_graph, where)


def _parse(message, path: Path, where: str):
    """``message`` filled from the file at ``path``; a damaged file is an InputError."""
    from google.protobuf.message import DecodeError

    try:
        message.ParseFromString(path.read_bytes())
    except (DecodeError, OSError, ValueError, RecursionError) as exc:
        raise InputError(f"corrupt {path.name} ({exc})", where=where,
                         expected="a SavedModel written by tf_keras model.save()",
                         fix="save or copy the model again") from None
    return message


def _scan_meta_graph(meta_graph, where: str) -> None:
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    saver = meta_graph.saver_def
    saver_nodes = {saver.save_tensor_name.split(":")[0], saver.restore_op_name.split(":")[0]} - {""}
    top = list(meta_graph.graph_def.node)
    checkpoint_fns = _closure([n for n in top if n.name in saver_nodes], library)
    other_roots = [n for n in top if n.name not in saver_nodes]
    for obj in meta_graph.object_graph_def.nodes:
        kind = obj.WhichOneof("kind")
        if kind == "function":
            other_roots.extend(_FakeCall(name) for name in obj.function.concrete_functions)
        elif kind == "bare_concrete_function":
            other_roots.append(_FakeCall(obj.bare_concrete_function.concrete_function_name))
    model_fns = _closure(other_roots, library)
    model_fns.update(set(library) - checkpoint_fns - model_fns)  # unreferenced: judged strictly
    shared = checkpoint_fns & model_fns
    if shared:
        _refuse(f"the checkpoint function {sorted(shared)[0]!r} is also called from the model's "
                "own graphs", where)
    for node in other_roots:
        if isinstance(node, _FakeCall):
            continue
        _check_op(node.op, f"graph node {node.name!r}", where, checkpoint=False)
    for name in sorted(library):
        for node in library[name].node_def:
            _check_op(node.op, f"function {name!r}", where, checkpoint=name in checkpoint_fns)


class _FakeCall:
    """A reference to a library function from the object graph (not a graph node)."""

    def __init__(self, name: str):
        self.name, self.op, self.attr = name, name, {}


def _closure(roots, library: dict) -> set[str]:
    found: set[str] = set()
    todo = [n for root in roots for n in _callees(root, library)]
    while todo:
        name = todo.pop()
        if name in found or name not in library:
            continue
        found.add(name)
        todo.extend(n for node in library[name].node_def for n in _callees(node, library))
    return found


def _callees(node, library: dict) -> Iterator[str]:
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        if value.HasField("list"):
            yield from (f.name for f in value.list.func)


def _check_op(op: str, inside: str, where: str, checkpoint: bool) -> None:
    if op in _PYTHON_OPS:
        _refuse(f"{inside} holds a {op} op, which calls Python code", where)
    if checkpoint and op in _CHECKPOINT_OPS:
        return
    if _DENIED_OPS.fullmatch(op):
        _refuse(f"{inside} holds a {op} op, which reaches files, the network or a debugger "
                "(a model's layers never need it)", where)
