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
    """Fraction of exact zeros in each kernel (biases and BN parameters left out), by
    ``layer/kernel`` (tfmot's strip functions rebuild variables without the layer scope,
    so the layer's name is taken from the layer, not the variable)."""
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                values = weight.numpy()
                out[f"{layer.name}/{short}"] = float(np.count_nonzero(values == 0) / values.size)
    return out


def compress(source: SourceModel, recipe: Recipe, data: Dataset, log=lambda msg: None) -> CompressedModel:
    """Apply the recipe's techniques in order: regularize -> prune (magnitude or channel)
    -> cluster -> QAT, each fine-tuning against the source model's outputs too when
    ``finetune.distill`` is set. Each works on a copy; ``source.model`` is never modified."""
    from .qat import check_recipe

    check_recipe(recipe)  # fail before any training on a combination that cannot work
    if hasattr(source.model, "to_tflite"):  # a Keras 3 model kept as it is: quantization only
        return CompressedModel(model=source.model, recipe=recipe,
                               notes=["the Keras 3 model is converted as it is (post-training "
                                      "quantization only)"])
    keras_env.set_seed(recipe.seed)
    model = copy_model(source.model)
    history: dict[str, list[float]] = {}
    steps: list[str] = []
    notes: list[str] = []
    clusters: dict[str, int] = {}
    qat_model = None
    if recipe.finetune.distill is not None:
        from .distill import agreement, distilled

        spec = recipe.finetune.distill
        log(f"distillation: fine-tuning against the source model's outputs (alpha {spec.alpha:g}, "
            f"temperature {spec.temperature:g})")
        data = distilled(data, source.model, spec, recipe.finetune.batch_size)
        notes.append(agreement(data))
        log(notes[-1])
    if recipe.regularize is not None:
        from .regularize import regularize

        spec = recipe.regularize
        log(f"regularizing: {spec.kind}, strength {spec.strength:g}, {spec.epochs} epochs")
        model = regularize(model, spec, recipe.finetune, data, history)
        steps.append(f"regularize({spec.kind})")
    if recipe.prune is not None and recipe.prune.structure == "channel":
        from .channel import channel_prune

        log(f"channel pruning: {recipe.prune.final_sparsity:.2f} of the channels by "
            f"{recipe.prune.importance}, {recipe.finetune.epochs} fine-tuning epochs")
        model, result = channel_prune(model, recipe.prune, recipe.finetune, data, history)
        notes.extend(result.notes)
        widths = ", ".join(f"{name} {result.original[name]}->{len(kept)}"
                           for name, kept in result.kept.items())
        steps.append(f"prune(channel: {widths})")
        then = recipe.prune.then_sparsity
        if then is not None:
            spec = recipe.prune.model_copy(update={
                "structure": "unstructured", "final_sparsity": then, "then_sparsity": None,
                "per_layer": {},     # channel ratios there, not sparsities
                "initial_sparsity": min(recipe.prune.initial_sparsity, then)})
            log(f"pruning the channels left: unstructured, final sparsity {then:.2f}, "
                f"{recipe.finetune.epochs} fine-tuning epochs")
            before = len(notes)
            model, hist = prune(model, spec, recipe.finetune, data, notes)
            for note in notes[before:]:
                log(note)
            for key, values in hist.items():     # the curves go on after the channel phase's
                history[key] = history.get(key, []) + list(values)
            steps.append("prune(unstructured)")
    elif recipe.prune is not None:
        log(f"pruning: {recipe.prune.structure}, final sparsity {recipe.prune.final_sparsity:.2f}, "
            f"{recipe.finetune.epochs} fine-tuning epochs")
        before = len(notes)
        model, hist = prune(model, recipe.prune, recipe.finetune, data, notes)
        for note in notes[before:]:
            log(note)
        history.update(hist)
        steps.append(f"prune({recipe.prune.structure})")
    if recipe.cluster is not None:
        from .cluster import cluster

        spec = recipe.cluster
        log(f"clustering: {spec.number_of_clusters} clusters"
            f"{', sparsity preserved' if spec.preserve_sparsity else ''}, {spec.epochs} epochs")
        model, clusters, _ = cluster(model, spec, recipe.finetune, data, history, notes)
        steps.append(f"cluster({spec.number_of_clusters}"
                     f"{', preserve_sparsity' if spec.preserve_sparsity else ''})")
    if recipe.qat is not None:
        from .qat import quantize_aware

        log(f"quantization-aware training: preserve {recipe.qat.preserve}, {recipe.qat.epochs} epochs")
        qat_model = quantize_aware(model, recipe, data, history)
        steps.append(f"qat(preserve={recipe.qat.preserve})")
    if recipe.finetune.distill is not None and steps:   # only when something fine-tuned
        spec = recipe.finetune.distill
        steps.insert(0, f"distill(alpha={spec.alpha:g}, temperature={spec.temperature:g})")
    return CompressedModel(model=model, recipe=recipe, sparsity=weight_sparsity(model),
                           clusters=clusters, history=history, notes=notes, qat_model=qat_model,
                           steps=steps)
