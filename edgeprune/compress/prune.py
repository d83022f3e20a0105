"""Gradual magnitude pruning with tensorflow-model-optimization.

Each prunable layer (tfmot's registry: Conv2D, Dense, DepthwiseConv2D, ...) is
wrapped with ``prune_low_magnitude`` on a polynomial or constant schedule that
reaches the recipe's final sparsity two thirds of the way through fine-tuning,
so the last third recovers accuracy at the final sparsity. ``block_size`` and
``m_by_n`` are passed to tfmot as they are. The wrappers are stripped at the end.

No layer is hollowed silently:

- the stem and the classifier (the first and last prunable layers) are pruned to at
  most ``stem_and_classifier_max_sparsity`` (0.5) unless ``per_layer`` names them;
- with ``scope = "global"`` no layer goes past ``max_layer_sparsity`` (0.9, the floor):
  a layer the ranking would prune further is held there and the rest of the zeros are
  spread over the other layers, and a note says so;
- after fine-tuning, every layer whose kernel is more zeros than ``max_layer_sparsity``
  (asked for in ``per_layer``, or by a per-layer ``final_sparsity`` above it) is named in a
  ``warning:`` note, which the export prints and keeps in the report.

    >>> stripped, history = prune(model, recipe.prune, recipe.finetune, data)
"""

from __future__ import annotations

import math

from .. import keras_env
from ..errors import ConfigError
from ..recipe import FinetuneSpec, PruneSpec
from ..types import Dataset
from .training import fit

PRUNABLE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "Conv1D")


def schedule_for(spec: PruneSpec, final_sparsity: float, end_step: int):
    tfmot = keras_env.tfmot()
    if spec.schedule == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(final_sparsity, begin_step=0,
                                                     frequency=spec.frequency)
    initial = min(spec.initial_sparsity, final_sparsity)
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=initial, final_sparsity=final_sparsity,
                                                begin_step=0, end_step=end_step,
                                                frequency=spec.frequency)


def prunable_layers(model) -> list[str]:
    """Names of the layers magnitude pruning can wrap, in model order."""
    return [layer.name for layer in model.layers
            if type(layer).__name__ in PRUNABLE and layer.get_weights()]


def layer_caps(model, spec: PruneSpec) -> dict[str, float]:
    """The most each prunable layer (not named in ``per_layer``) may be pruned: the stem
    and the classifier at ``stem_and_classifier_max_sparsity``; with global scope every
    other layer at ``max_layer_sparsity``."""
    names = prunable_layers(model)
    ends = {names[0], names[-1]} if names else set()
    caps = {}
    for name in names:
        if name in spec.per_layer:
            continue
        cap = spec.max_layer_sparsity if spec.scope == "global" else 1.0
        if name in ends and spec.stem_and_classifier_max_sparsity is not None:
            cap = min(cap, spec.stem_and_classifier_max_sparsity)
        caps[name] = cap
    return caps


def global_ratios(model, spec: PruneSpec, notes: list[str] | None = None) -> dict[str, float]:
    """``scope = "global"``: one magnitude threshold over every prunable kernel (those not
    named in ``per_layer``), chosen so that ``final_sparsity`` of their weights fall below
    it, turned into each layer's own sparsity for tfmot's per-layer schedules. Ranked on
    the weights as they are before fine-tuning.

    A layer the threshold would prune past its cap (:func:`layer_caps`) is held at the cap,
    and the threshold is raised over the remaining layers until the zeros add up to
    ``final_sparsity`` again (or every layer is at its cap; ``notes`` says so)."""
    import numpy as np

    caps = layer_caps(model, spec)
    kernels = {layer.name: np.abs(layer.get_weights()[0]).ravel() for layer in model.layers
               if layer.name in caps}
    if not kernels:
        return {}
    sizes = {name: w.size for name, w in kernels.items()}
    wanted = spec.final_sparsity * sum(sizes.values())
    held: dict[str, float] = {}
    free_ratios = _threshold_ratios(kernels, wanted)
    first = dict(free_ratios)
    while True:
        over = [n for n, r in free_ratios.items() if r > caps[n] + 1e-9]
        if not over:
            break
        held.update({n: caps[n] for n in over})
        free = {n: w for n, w in kernels.items() if n not in held}
        left = wanted - sum(held[n] * sizes[n] for n in held)
        free_ratios = _threshold_ratios(free, left) if free else {}
    ratios = {**free_ratios, **held}
    for name in held:
        if notes is not None and first[name] > caps[name] + 1e-9:
            why = ("the stem or the classifier: prune.stem_and_classifier_max_sparsity"
                   if caps[name] < spec.max_layer_sparsity else "the floor: prune.max_layer_sparsity")
            notes.append(f"{name}: the global ranking would prune {first[name]:.1%} of its weights; "
                         f"held at {caps[name]:.0%} ({why})")
    reached = sum(ratios[n] * sizes[n] for n in ratios) / sum(sizes.values())
    if notes is not None and reached < spec.final_sparsity - 0.005:
        notes.append(f"global pruning reaches {reached:.1%}, not final_sparsity "
                     f"{spec.final_sparsity:.0%}: every layer is at its cap")
    # Keep each ratio below 1 (tfmot needs a weight left) and at 0.999 at most.
    return {name: float(min(ratios[name], 0.999)) for name in kernels}


def _threshold_ratios(kernels: dict, zeros: float) -> dict[str, float]:
    """Each layer's fraction at or below the one magnitude threshold that leaves about
    ``zeros`` weights (over all of ``kernels``) below it."""
    import numpy as np

    pooled = np.sort(np.concatenate(list(kernels.values())))
    cut = int(round(min(max(zeros, 0.0), len(pooled))))
    if cut == 0:
        return {name: 0.0 for name in kernels}
    threshold = pooled[cut - 1]
    return {name: float(np.mean(w <= threshold)) for name, w in kernels.items()}


def hollow_layers(model, limit: float) -> dict[str, tuple[int, int]]:
    """Layers whose kernel is more than ``limit`` zeros: name -> (weights left, weights)."""
    import numpy as np

    out = {}
    for layer in model.layers:
        if type(layer).__name__ in PRUNABLE and layer.get_weights():
            kernel = layer.get_weights()[0]
            left = int(np.count_nonzero(kernel))
            if 1.0 - left / kernel.size > limit + 1e-9:
                out[layer.name] = (left, int(kernel.size))
    return out


def layer_params(spec: PruneSpec, layer_name: str, end_step: int,
                 ratios: dict[str, float] | None = None,
                 caps: dict[str, float] | None = None) -> dict | None:
    """tfmot arguments for one layer, or None to leave it dense."""
    sparsity = spec.per_layer.get(layer_name, (ratios or {}).get(layer_name, spec.final_sparsity))
    if layer_name not in spec.per_layer and caps and layer_name in caps:
        sparsity = min(sparsity, caps[layer_name])
    if spec.structure == "m_by_n":
        return {"sparsity_m_by_n": tuple(spec.m_by_n)}
    if sparsity <= 0.0:
        return None
    params = {"pruning_schedule": schedule_for(spec, sparsity, end_step)}
    if spec.structure == "block":
        params["block_size"] = tuple(spec.block_size)
    return params


def end_step_for(data: Dataset, finetune: FinetuneSpec) -> int:
    steps_per_epoch = math.ceil(len(data.x_train) / finetune.batch_size)
    total = steps_per_epoch * max(1, finetune.epochs)
    return max(1, int(total * 2 / 3))


def prune(model, spec: PruneSpec, finetune: FinetuneSpec, data: Dataset,
          notes: list[str] | None = None):
    """Prune ``model`` (a copy the caller owns: its layers are wrapped and share their
    weights with the result); returns (stripped model, fine-tuning history keyed ``prune.*``).

    ``notes`` (if given) gets one line per prunable layer left dense, and why: block
    sparsity applies to 2-D kernels (Dense) only, in tfmot as in XNNPACK's sparse FC."""
    if spec.structure == "channel":
        raise ConfigError('structure = "channel" is handled by compress.channel, not magnitude pruning',
                          where="recipe.prune.structure")
    keras = keras_env.keras()
    tfmot = keras_env.tfmot()
    unknown = set(spec.per_layer) - {layer.name for layer in model.layers}
    if unknown:
        raise ConfigError(f"per_layer names layers the model does not have: {', '.join(sorted(unknown))}",
                          where="recipe.prune.per_layer",
                          expected=f"layer names among: {', '.join(l.name for l in model.layers)}")
    end_step = end_step_for(data, finetune)
    notes = [] if notes is None else notes
    ratios = global_ratios(model, spec, notes) if spec.scope == "global" else None
    caps = layer_caps(model, spec)
    if spec.scope == "per_layer" and spec.structure != "m_by_n":
        for name, cap in caps.items():
            if spec.final_sparsity > cap:
                notes.append(f"{name}: pruned to {cap:.0%}, not {spec.final_sparsity:.0%}: it is the "
                             "stem or the classifier (prune.stem_and_classifier_max_sparsity; "
                             "name it in prune.per_layer to choose)")
    wrapped: list[str] = []

    def wrap(layer):
        if type(layer).__name__ in PRUNABLE and layer.get_weights():
            if spec.structure == "block" and layer.get_weights()[0].ndim != 2:
                notes.append(f"{layer.name}: left dense: block sparsity {tuple(spec.block_size)} "
                             f"needs a 2-D kernel (Dense); this {type(layer).__name__} kernel is "
                             f"{layer.get_weights()[0].ndim}-D")
                return layer
            params = layer_params(spec, layer.name, end_step, ratios, caps)
            if params is not None:
                wrapped.append(layer.name)
                return tfmot.sparsity.keras.prune_low_magnitude(layer, **params)
        return layer

    pruned = keras.models.clone_model(model, clone_function=wrap)
    if not wrapped:
        raise ConfigError("no layer of the model can be pruned with these settings",
                          where="recipe.prune",
                          expected=f"at least one of {', '.join(PRUNABLE)} with a sparsity above 0")
    history: dict[str, list[float]] = {}
    fit(pruned, data, epochs=finetune.epochs, batch_size=finetune.batch_size,
        learning_rate=finetune.learning_rate, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        phase="prune", history=history)
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    for name, (left, size) in hollow_layers(stripped, spec.max_layer_sparsity).items():
        notes.append(f"warning: layer {name!r} is {1 - left / size:.1%} zeros ({left:,} of {size:,} "
                     f"weights left), past prune.max_layer_sparsity = {spec.max_layer_sparsity:g}; "
                     "its accuracy may collapse: lower it in prune.per_layer or prune.final_sparsity")
    return stripped, history
