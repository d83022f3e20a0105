"""Channel (filter) pruning: remove whole output channels so that the dense graph shrinks.

Unlike magnitude pruning, which leaves zeros in tensors of the same shape, this
rebuilds the model with fewer filters in Conv layers, fewer units in Dense layers,
and the matching slices of everything downstream: BatchNormalization parameters,
DepthwiseConv2D filters, the next layer's input channels, and the rows of a Dense
layer fed through Flatten (a channels-last ``H x W x C`` tensor flattens to
``(h * W + w) * C + c``, so channel ``c`` owns ``H * W`` rows).

How it works:

1. The model's graph (Sequential or functional) is read into *channel groups*
   (channel_groups.py): sets of tensors whose last axis means the same channels. A
   Conv/Dense output starts a group;
   layers that act per channel (activations, pooling, BatchNormalization, depthwise
   convolutions, dropout, padding) keep their input's group; Add/Multiply/... merge
   the groups of their inputs, so residual branches get **one shared channel mask**.
2. A group is left intact when it cannot be pruned consistently: it holds the model's
   input or output (the classifier), feeds a Concatenate, Reshape or a layer this module
   does not understand, or a producer has a softmax over its channels. Each case is
   returned as a note.
3. Channels are ranked by the L1 or L2 norm of their producer's filters (with the scale of
   a BatchNormalization right after folded in, as in the exported file; summed, after
   scaling each producer to mean 1, over the producers of a merged group); the lowest
   ``ratio`` of each group (``scope = "per_layer"``) or of all groups together
   (``scope = "global"``) are removed. ``per_layer`` ratios name a producer layer.
4. The model is cloned with the new widths and the kept weights are copied in; the
   original is not touched.

Example::

    pruned, result = prune_channels(model, ratio=0.5, importance="l1")
    result.kept        # {"conv1": [0, 3, 4, ...], ...}
    result.notes       # ["logits: left intact: it produces the model's output ..."]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .. import keras_env
from ..errors import ConfigError
from .channel_groups import PER_CHANNEL, PRODUCERS, Analysis, analyse


@dataclass
class ChannelPruneResult:
    """What :func:`prune_channels` did: channels kept per producer layer, and what was left."""

    kept: dict[str, list[int]] = field(default_factory=dict)       # producer -> kept indices
    original: dict[str, int] = field(default_factory=dict)         # producer -> channels before
    notes: list[str] = field(default_factory=list)                 # left intact, and why

    def removed_fraction(self) -> dict[str, float]:
        return {name: 1.0 - len(self.kept[name]) / self.original[name] for name in self.kept}


# --------------------------------------------------------------------------- selection

def _named_weights(layer) -> dict[str, np.ndarray]:
    names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
    return dict(zip(names, layer.get_weights()))


def _channel_scores(layer, importance: str, bn=None) -> np.ndarray:
    """L1 or L2 norm of each output channel's filter; with a BatchNormalization right
    after the layer, of the filter with the BN scale folded in (as the exported file
    holds it), so a filter the BN scales down counts as small."""
    values = _named_weights(layer)
    kernel = values.get("pointwise_kernel", values.get("kernel"))
    flat = kernel.reshape(-1, kernel.shape[-1])
    scores = np.abs(flat).sum(axis=0) if importance == "l1" else np.sqrt((flat ** 2).sum(axis=0))
    if bn is not None:
        stats = _named_weights(bn)
        gamma = stats.get("gamma", np.ones_like(scores))
        scores = scores * np.abs(gamma) / np.sqrt(np.maximum(stats["moving_variance"], 0.0) + bn.epsilon)
    return scores


def _select(a: Analysis, *, ratio: float, per_layer: Mapping[str, float], importance: str,
            scope: str) -> tuple[dict[int, np.ndarray], list[str]]:
    """Kept channel indices per prunable group, and notes on groups left intact."""
    notes = []
    producer_names = {layer.name: g for g, layers in a.producers.items() for layer in layers}
    for name in per_layer:
        if name not in producer_names:
            raise ConfigError(
                f"prune.per_layer names {name!r}, which is not a Conv/Dense layer of the model",
                where=f"prune.per_layer.{name}",
                expected=f"one of: {', '.join(sorted(producer_names)) or '(none)'}",
                fix="use the name of a layer whose filters can be removed")
        if producer_names[name] in a.blocked:
            raise ConfigError(
                f"prune.per_layer asks to remove channels of {name!r}, but they cannot be "
                f"removed consistently: {a.blocked[producer_names[name]]}",
                where=f"prune.per_layer.{name}",
                fix="drop this entry; the layer is left intact")
    scores: dict[int, np.ndarray] = {}
    ratios: dict[int, float] = {}
    for g, layers in a.producers.items():
        names = ", ".join(layer.name for layer in layers)
        if g in a.blocked:
            notes.append(f"{names}: left intact: {a.blocked[g]}")
            continue
        widths = {_width(layer) for layer in layers}
        if len(widths) != 1:
            notes.append(f"{names}: left intact: merged layers disagree on width {sorted(widths)}")
            continue
        per_producer = [_channel_scores(layer, importance, a.bn_after.get(layer.name))
                        for layer in layers]
        scores[g] = sum(s / (s.mean() + 1e-12) for s in per_producer)
        asked = {per_layer[layer.name] for layer in layers if layer.name in per_layer}
        if len(asked) > 1:
            raise ConfigError(
                f"prune.per_layer gives different ratios {sorted(asked)} to layers {names}, "
                "which share one channel mask (they meet in an element-wise merge)",
                where="prune.per_layer", fix="give these layers the same ratio")
        ratios[g] = asked.pop() if asked else ratio
    if scope == "global":
        return _select_global(scores, ratio, per_layer_groups={
            g for g, layers in a.producers.items() if any(l.name in per_layer for l in layers)},
            ratios=ratios), notes
    kept = {}
    for g, s in scores.items():
        keep = max(1, int(round(len(s) * (1.0 - ratios[g]))))
        kept[g] = np.sort(np.argsort(-s, kind="stable")[:keep])
    return kept, notes


def _select_global(scores: dict[int, np.ndarray], ratio: float, *, per_layer_groups: set[int],
                   ratios: dict[int, float]) -> dict[int, np.ndarray]:
    """Remove the lowest ``ratio`` of all (normalized) channels together; groups that
    ``per_layer`` names keep their own ratio. Every group keeps at least one channel."""
    kept = {}
    pool = [(float(v), g, i) for g, s in scores.items() if g not in per_layer_groups
            for i, v in enumerate(s)]
    n_remove = int(round(len(pool) * ratio))
    removed: dict[int, set[int]] = {}
    for _, g, i in sorted(pool)[:n_remove]:
        removed.setdefault(g, set()).add(i)
    for g, s in scores.items():
        if g in per_layer_groups:
            keep = max(1, int(round(len(s) * (1.0 - ratios[g]))))
            kept[g] = np.sort(np.argsort(-s, kind="stable")[:keep])
            continue
        idx = np.array([i for i in range(len(s)) if i not in removed.get(g, set())], dtype=int)
        if idx.size == 0:
            idx = np.array([int(np.argmax(s))])
        kept[g] = idx
    return kept


# --------------------------------------------------------------------------- rebuild

def _width(layer) -> int:
    config = layer.get_config()
    return int(config["filters"] if "filters" in config else config["units"])


def _expand(kept: np.ndarray, channels: int, repeat: int) -> np.ndarray:
    """Indices along a last axis of ``repeat * channels`` (channel fastest) that stay."""
    return (np.arange(repeat)[:, None] * channels + kept[None, :]).reshape(-1)


def _slice(array: np.ndarray, axis: int, index: np.ndarray | None) -> np.ndarray:
    return array if index is None else np.take(array, index, axis=axis)


def _new_weights(layer, in_idx: np.ndarray | None, out_idx: np.ndarray | None) -> list[np.ndarray]:
    kind = layer.__class__.__name__
    result = []
    for var, value in zip(layer.weights, layer.get_weights()):
        name = var.name.split("/")[-1].split(":")[0]
        if kind in PRODUCERS:
            if name in ("kernel", "pointwise_kernel"):
                value = _slice(_slice(value, value.ndim - 2, in_idx), value.ndim - 1, out_idx)
            elif name == "depthwise_kernel":
                value = _slice(value, value.ndim - 2, in_idx)
            elif name == "bias":
                value = _slice(value, 0, out_idx)
        elif kind in ("DepthwiseConv2D", "DepthwiseConv1D") and name == "depthwise_kernel":
            value = _slice(value, value.ndim - 2, in_idx)
        elif kind == "PReLU":
            value = _slice(value, value.ndim - 1, in_idx)
        elif kind in PER_CHANNEL:          # BatchNormalization, depthwise bias
            value = _slice(value, 0, in_idx)
        result.append(value)
    return result


def prune_channels(model, *, ratio: float, importance: str = "l1", scope: str = "per_layer",
                   per_layer: Mapping[str, float] | None = None):
    """Return a new model with the lowest-importance channels removed, and what was done.

    Args:
        model: a built Sequential or functional tf_keras model (not modified).
        ratio: fraction of each prunable group's channels to remove (0 <= ratio < 1).
        importance: "l1" or "l2" norm of each channel's filter.
        scope: "per_layer" removes ``ratio`` of every group; "global" ranks all channels
            together (after scaling each group to mean importance 1).
        per_layer: ratios for named producer layers, overriding ``ratio``.
    """
    k = keras_env.keras()
    per_layer = dict(per_layer or {})
    a = analyse(model)
    kept_groups, notes = _select(a, ratio=ratio, per_layer=per_layer, importance=importance,
                                 scope=scope)
    widths = {g: _width(a.producers[g][0]) for g in kept_groups}
    result = ChannelPruneResult(notes=notes)
    new_width: dict[str, int] = {}
    slices: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    for node in a.nodes:
        layer = node.layer
        in_idx = None
        if node.inputs:
            g, repeat = a.tensor[node.inputs[0]]
            g = a.uf.find(g)
            if g in kept_groups:
                in_idx = _expand(kept_groups[g], widths[g], repeat)
        out_idx = None
        g_out = a.uf.find(a.tensor[node.output][0])
        if layer.__class__.__name__ in PRODUCERS and g_out in kept_groups:
            out_idx = kept_groups[g_out]
            new_width[layer.name] = len(out_idx)
            result.kept[layer.name] = [int(i) for i in out_idx]
            result.original[layer.name] = widths[g_out]
        slices[layer.name] = (in_idx, out_idx)

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in new_width:
            config["filters" if "filters" in config else "units"] = new_width[layer.name]
        return layer.__class__.from_config(config)

    pruned = k.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        if not layer.weights or layer.name not in slices:
            continue
        pruned.get_layer(layer.name).set_weights(_new_weights(layer, *slices[layer.name]))
    return pruned, result


def channel_prune(model, spec, finetune, data, history: dict[str, list[float]] | None = None):
    """The recipe's channel pruning: remove ``spec.final_sparsity`` of the channels (or the
    ``spec.per_layer`` ratios) by ``spec.importance``, then fine-tune for
    ``finetune.epochs``; ``history`` gets ``prune.<metric>`` per epoch.

    Returns ``(pruned model, ChannelPruneResult)``; ``model`` is not modified.
    """
    from . import training

    history = {} if history is None else history
    pruned, result = prune_channels(model, ratio=spec.final_sparsity, importance=spec.importance,
                                    scope=spec.scope, per_layer=spec.per_layer)
    if not result.kept:
        raise ConfigError("channel pruning found no layer whose channels can be removed",
                          where='recipe.prune.structure = "channel"',
                          expected="Conv/Dense layers whose outputs feed other Conv/Dense layers",
                          fix="see the notes: " + "; ".join(result.notes))
    training.fit(pruned, data, epochs=finetune.epochs, batch_size=finetune.batch_size,
                 learning_rate=finetune.learning_rate, phase="prune", history=history)
    return pruned, result
