"""Reading a tf_keras model's graph into channel groups, for channel pruning (channel.py).

A channel group is a set of tensors whose last axis means the same channels: a Conv/Dense
output starts one; layers that act per channel keep their input's group; element-wise
merges (Add, Multiply, ...) join the groups of their inputs, so residual branches share
one channel mask. A group is blocked, with the reason, when it cannot be pruned
consistently: the model's input or output, a Concatenate, Reshape or unknown layer, a
shared layer, a softmax over channels, a non-channels-last layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from .. import keras_env
from ..errors import ConfigError

# Layers whose output channels can be removed (they own the filters of a channel).
PRODUCERS = {"Conv1D", "Conv2D", "Conv3D", "Dense", "SeparableConv1D", "SeparableConv2D"}
# Layers that act on each channel separately: output channel c depends on input channel c only.
PER_CHANNEL = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "BatchNormalization", "DepthwiseConv2D",
    "DepthwiseConv1D",
}
# Element-wise merges: their inputs and output share one channel mask.
_MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
# Activations that mix channels (a softmax over units changes when a unit is removed).
_NON_ELEMENTWISE_ACTIVATIONS = {"softmax", "log_softmax"}


# --------------------------------------------------------------------------- graph

@dataclass
class Node:
    layer: Any
    inputs: list[tuple]          # tensor ids
    output: tuple                # tensor id
    other_refs: list[tuple]      # tensor ids referenced in call kwargs


class _UnionFind:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def add(self) -> int:
        key = len(self.parent)
        self.parent[key] = key
        return key

    def find(self, key: int) -> int:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
        return ra


def _graph(model) -> tuple[list[Node], list[tuple], list[tuple]]:
    """The model's layer calls in topological order, its input and its output tensor ids."""
    k = keras_env.keras()
    if isinstance(model, k.Sequential):
        nodes, previous = [], ("__input__", 0, 0)
        for layer in model.layers:
            out = (layer.name, 0, 0)
            nodes.append(Node(layer, [previous], out, []))
            previous = out
        return nodes, [("__input__", 0, 0)], [previous]
    if not getattr(model, "_is_graph_network", False):
        raise ConfigError(
            f"model {model.name!r} is a subclassed Keras model; its graph cannot be read",
            where="prune.structure = \"channel\"",
            expected="a Sequential or functional tf_keras model",
            fix="rebuild the model with the Sequential or functional API, or use "
                "structure = \"unstructured\" / \"block\"")
    config = model.get_config()
    names = {spec["name"] for spec in config["layers"]}
    nodes = []
    for spec in config["layers"]:
        layer = model.get_layer(spec["name"])
        if spec["class_name"] == "InputLayer":
            continue
        for index, inbound in enumerate(spec.get("inbound_nodes", [])):
            inputs, other = _split_refs(inbound, names)
            nodes.append(Node(layer, inputs, (layer.name, index, 0), other))
    inputs = [tuple(ref[:3]) for ref in config["input_layers"]]
    outputs = [tuple(ref[:3]) for ref in config["output_layers"]]
    return nodes, inputs, outputs


def _split_refs(inbound, names) -> tuple[list[tuple], list[tuple]]:
    """Positional tensor refs of a serialized call, and any other tensors its kwargs name."""
    inputs, other = [], []
    entries = inbound if isinstance(inbound, list) else [inbound]
    for entry in entries:
        if _is_ref(entry, names):
            inputs.append(tuple(entry[:3]))
            if len(entry) > 3:
                other.extend(_refs_in(entry[3], names))
        else:
            other.extend(_refs_in(entry, names))
    return inputs, other


def _is_ref(value, names) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) >= 3 and isinstance(value[0], str)
            and value[0] in names and isinstance(value[1], int) and isinstance(value[2], int))


def _refs_in(value, names) -> Iterable[tuple]:
    if _is_ref(value, names):
        yield tuple(value[:3])
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _refs_in(item, names)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs_in(item, names)


# --------------------------------------------------------------------------- analysis

@dataclass
class Analysis:
    uf: _UnionFind
    tensor: dict[tuple, tuple[int, int]]          # tensor id -> (group node, repeat)
    producers: dict[int, list[Any]]               # group node -> producer layers
    blocked: dict[int, str]                       # group node -> reason (first found)
    nodes: list[Node]
    produced_by: dict[tuple, Any] = field(default_factory=dict)   # tensor id -> producer layer
    bn_after: dict[str, Any] = field(default_factory=dict)        # producer -> BN reading it

    def group(self, tensor_id) -> int:
        return self.uf.find(self.tensor[tensor_id][0])

    def block(self, group_node: int, reason: str) -> None:
        self.blocked.setdefault(self.uf.find(group_node), reason)


def analyse(model) -> Analysis:
    nodes, inputs, outputs = _graph(model)
    a = Analysis(_UnionFind(), {}, {}, {}, nodes)
    shared = {n.layer.name for n in nodes if sum(m.layer is n.layer for m in nodes) > 1}
    for tid in inputs:
        a.tensor[tid] = (a.uf.add(), 1)
        a.block(a.tensor[tid][0], "it carries the model's input channels, which are fixed")
    for node in nodes:
        _visit(a, node, shared)
    for tid in outputs:
        layer = tid[0]
        a.block(a.tensor[tid][0],
                f"it produces the model's output (layer {layer!r}); its units are the classes "
                "or outputs the caller relies on")
    # Re-key producers and blocks by final roots (unions may have happened after registration).
    producers: dict[int, list[Any]] = {}
    for node_id, layers in a.producers.items():
        producers.setdefault(a.uf.find(node_id), []).extend(layers)
    a.producers = producers
    a.blocked = {a.uf.find(g): r for g, r in reversed(list(a.blocked.items()))}
    return a


def _visit(a: Analysis, node: Node, shared: set[str]) -> None:
    layer, kind = node.layer, node.layer.__class__.__name__
    config = layer.get_config()
    ins = [a.tensor[t] for t in node.inputs]
    for ref in node.other_refs:
        a.block(a.tensor[ref][0], f"layer {layer.name!r} ({kind}) uses it as a call argument")
    if layer.name in shared:
        reason = f"layer {layer.name!r} is called more than once (shared weights)"
        for g, _ in ins:
            a.block(g, reason)
        a.tensor[node.output] = (a.uf.add(), 1)
        a.block(a.tensor[node.output][0], reason)
        return
    problem = _layer_problem(layer, kind, config, len(ins))
    if problem:
        for g, _ in ins:
            a.block(g, problem)
        a.tensor[node.output] = (a.uf.add(), 1)
        a.block(a.tensor[node.output][0], problem)
        return
    if kind in PRODUCERS:
        out = a.uf.add()
        a.tensor[node.output] = (out, 1)
        a.producers.setdefault(out, []).append(layer)
        a.produced_by[node.output] = layer
        if config.get("activation") in _NON_ELEMENTWISE_ACTIVATIONS:
            a.block(out, f"layer {layer.name!r} applies {config['activation']} across its channels")
        return
    if kind in PER_CHANNEL:
        a.tensor[node.output] = ins[0]
        producer = a.produced_by.get(node.inputs[0])
        if kind == "BatchNormalization" and producer is not None:
            a.bn_after.setdefault(producer.name, layer)
        return
    if kind in _MERGES:
        repeats = {r for _, r in ins}
        root = ins[0][0]
        for g, _ in ins[1:]:
            root = a.uf.union(root, g)
        a.tensor[node.output] = (root, ins[0][1])
        if len(repeats) > 1:
            a.block(root, f"layer {layer.name!r} ({kind}) merges tensors of different layouts")
        return
    if kind == "Flatten":
        shape = layer.input_shape
        spatial = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        g, repeat = ins[0]
        a.tensor[node.output] = (g, repeat * spatial)
        return
    raise AssertionError(f"unhandled layer kind {kind}")  # _layer_problem covers the rest


def _layer_problem(layer, kind: str, config: Mapping, n_inputs: int) -> str | None:
    """Why the channels around this layer cannot be pruned, or None when they can."""
    if kind not in PRODUCERS | PER_CHANNEL | _MERGES | {"Flatten"}:
        if kind == "Concatenate":
            return (f"layer {layer.name!r} concatenates it with other tensors (channel offsets "
                    "would have to move; left intact)")
        return f"layer {layer.name!r} ({kind}) is not a layer channel pruning can slice through"
    if config.get("data_format", "channels_last") != "channels_last":
        return f"layer {layer.name!r} uses data_format = {config['data_format']!r}"
    if config.get("groups", 1) != 1:
        return f"layer {layer.name!r} is a grouped convolution (groups = {config['groups']})"
    if kind in ("DepthwiseConv2D", "DepthwiseConv1D", "SeparableConv1D", "SeparableConv2D") \
            and config.get("depth_multiplier", 1) != 1:
        return (f"layer {layer.name!r} has depth_multiplier = {config['depth_multiplier']}; "
                "only 1 keeps channels one-to-one")
    if kind == "BatchNormalization":
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if axis not in (-1, len(layer.input_shape) - 1):
            return f"layer {layer.name!r} normalizes over axis {axis}, not the channel axis"
    if kind == "PReLU" and config.get("shared_axes") is None and len(layer.input_shape) > 2:
        return f"layer {layer.name!r} has a per-position PReLU slope"
    if kind == "Activation" and config.get("activation") in _NON_ELEMENTWISE_ACTIVATIONS:
        return f"layer {layer.name!r} applies {config['activation']} across its channels"
    if kind in ("Softmax",):
        return f"layer {layer.name!r} applies a softmax across its channels"
    if kind in _MERGES and n_inputs < 2:
        return f"layer {layer.name!r} ({kind}) has fewer than two inputs"
    return None
