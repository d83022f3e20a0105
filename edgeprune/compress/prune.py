"""Gradual magnitude pruning with tensorflow-model-optimization.

Each prunable layer (tfmot's registry: Conv2D, Dense, DepthwiseConv2D, ...) is
wrapped with ``prune_low_magnitude`` on a polynomial or constant schedule that
reaches the recipe's final sparsity two thirds of the way through fine-tuning,
so the last third recovers accuracy at the final sparsity. ``block_size`` and
``m_by_n`` are passed to tfmot as they are. The wrappers are stripped at the end.

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


def global_ratios(model, spec: PruneSpec) -> dict[str, float]:
    """``scope = "global"``: one magnitude threshold over every prunable kernel (those not
    named in ``per_layer``), chosen so that ``final_sparsity`` of their weights fall below
    it, turned into each layer's own sparsity for tfmot's per-layer schedules. Ranked on
    the weights as they are before fine-tuning."""
    import numpy as np

    kernels = {layer.name: np.abs(layer.get_weights()[0]).ravel() for layer in model.layers
               if type(layer).__name__ in PRUNABLE and layer.get_weights()
               and layer.name not in spec.per_layer}
    if not kernels:
        return {}
    pooled = np.sort(np.concatenate(list(kernels.values())))
    cut = int(round(len(pooled) * spec.final_sparsity))
    if cut == 0:
        return {name: 0.0 for name in kernels}
    threshold = pooled[cut - 1]
    # Keep each ratio below 1 (tfmot needs a weight left) and at 0.999 at most.
    return {name: float(min(np.mean(w <= threshold), 0.999)) for name, w in kernels.items()}


def layer_params(spec: PruneSpec, layer_name: str, end_step: int,
                 ratios: dict[str, float] | None = None) -> dict | None:
    """tfmot arguments for one layer, or None to leave it dense."""
    sparsity = spec.per_layer.get(layer_name, (ratios or {}).get(layer_name, spec.final_sparsity))
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
    ratios = global_ratios(model, spec) if spec.scope == "global" else None
    wrapped: list[str] = []
    notes = [] if notes is None else notes

    def wrap(layer):
        if type(layer).__name__ in PRUNABLE and layer.get_weights():
            if spec.structure == "block" and layer.get_weights()[0].ndim != 2:
                notes.append(f"{layer.name}: left dense: block sparsity {tuple(spec.block_size)} "
                             f"needs a 2-D kernel (Dense); this {type(layer).__name__} kernel is "
                             f"{layer.get_weights()[0].ndim}-D")
                return layer
            params = layer_params(spec, layer.name, end_step, ratios)
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
    return stripped, history
