"""Compression: the techniques a recipe can ask for, applied in a fixed order.

Each technique is one module with one entry point taking the model and its
recipe section and returning a new model; :func:`compress` runs the ones the
recipe names, on a copy of the source model (the source is never modified).
"""

from __future__ import annotations

import numpy as np

from .. import keras_env
from ..recipe import Recipe
from ..types import CompressedModel, Dataset, SourceModel
from .prune import prune


def copy_model(model):
    keras = keras_env.keras()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def weight_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each kernel (biases and BN parameters left out)."""
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            name = weight.name.split(":")[0]
            if name.endswith(("kernel", "depthwise_kernel", "pointwise_kernel")):
                values = weight.numpy()
                out[name] = float(np.count_nonzero(values == 0) / values.size)
    return out


def compress(source: SourceModel, recipe: Recipe, data: Dataset, log=lambda msg: None) -> CompressedModel:
    keras_env.set_seed(recipe.seed)
    model = copy_model(source.model)
    history: dict[str, list[float]] = {}
    steps: list[str] = []
    if recipe.prune is not None:
        log(f"pruning: {recipe.prune.structure}, final sparsity {recipe.prune.final_sparsity:.2f}, "
            f"{recipe.finetune.epochs} fine-tuning epochs")
        model, hist = prune(model, recipe.prune, recipe.finetune, data)
        history.update({f"prune.{k}": v for k, v in hist.items()})
        steps.append(f"prune({recipe.prune.structure})")
    return CompressedModel(model=model, recipe=recipe, sparsity=weight_sparsity(model),
                           history=history, steps=steps)
