"""Candidate recipes, derived from a base recipe.

A :class:`Candidate` is a recipe with a label, the changes from its base in words, and
its expected cost relative to the base (the ratio of training epochs), which a time
budget uses to decide whether it still fits.

:func:`backoff_ladder` gives the gentler recipes the accuracy back-off tries, most
compressed first (``recipe.backoff`` sets the steps)::

    longer fine-tuning         finetune.epochs x finetune_factor
    distilled                  the same, fine-tuned against the source model's outputs too
                               (finetune.distill), where the data allows it and the recipe
                               fine-tunes without it
    lower sparsity             final_sparsity x each of sparsity_factors, longer fine-tuning
                               (and prune.then_sparsity, after channel pruning, x the same)
    dense                      no pruning, clustering or regularization: post-training
                               quantization of the trained model only

The search's accuracy retry climbs the same first two rungs: longer fine-tuning
(``choices.longer``), then distillation (``choices.distilled``). Distillation is a rung of
its own, not kept by the gentler ones: it helps some models and costs others accuracy
(see ``choices.distilled``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..recipe import BackoffSpec, DistillSpec, Recipe


@dataclass(frozen=True)
class Candidate:
    label: str
    recipe: Recipe
    changes: tuple[str, ...] = ()
    cost: float = 1.0               # expected time / the base recipe's


def derive(base: Recipe, label: str, **updates) -> Candidate:
    """A candidate: ``base`` with top-level fields replaced (validated like a recipe file)."""
    data = base.model_dump(mode="python")
    for key, value in updates.items():
        data[key] = value.model_dump(mode="python") if hasattr(value, "model_dump") else value
    recipe = Recipe.model_validate(data)
    return Candidate(label, recipe, recipe_changes(base, recipe),
                     training_epochs(recipe) / max(training_epochs(base), 1))


def recipe_changes(base: Recipe, new: Recipe) -> tuple[str, ...]:
    """``("prune.final_sparsity: 0.75 -> 0.5", ...)``: the fields that differ."""
    out = []
    old_all, new_all = base.model_dump(mode="json"), new.model_dump(mode="json")
    for section in old_all:
        before, after = old_all[section], new_all[section]
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            old, now = _flat(before, f"{section}."), _flat(after, f"{section}.")
            out.extend(f"{key}: {_show(old.get(key))} -> {_show(now.get(key))}"
                       for key in sorted(set(old) | set(now)) if old.get(key) != now.get(key))
        else:
            out.append(f"{section}: {_show(before if not isinstance(before, dict) else 'set')} -> "
                       f"{_show(after if not isinstance(after, dict) else 'set')}")
    return tuple(out)


def training_epochs(recipe: Recipe) -> int:
    """Epochs of training the recipe costs (fine-tuning for pruning, regularization,
    clustering, QAT); 0 for post-training quantization only."""
    epochs = 0
    if recipe.prune is not None:
        epochs += recipe.finetune.epochs
    if recipe.regularize is not None:
        epochs += recipe.regularize.epochs
    if recipe.cluster is not None:
        epochs += recipe.cluster.epochs
    if recipe.qat is not None:
        epochs += recipe.qat.epochs
    return epochs


def backoff_ladder(base: Recipe, distill: bool = False) -> list[Candidate]:
    """The rungs, most compressed first; ``distill``: the data allows distillation
    (:func:`edgeprune.compress.distill.applies`)."""
    spec = base.backoff or BackoffSpec()
    out: list[Candidate] = []
    prune = base.prune
    epochs = base.finetune.epochs
    if spec.finetune_factor > 1.0:
        epochs = max(epochs + 1, round(epochs * spec.finetune_factor))
    longer = base.finetune.model_copy(update={"epochs": epochs})
    if prune is not None and spec.finetune_factor > 1.0:
        out.append(derive(base, "longer fine-tuning", finetune=longer))
    if distill and spec.distill and base.finetune.distill is None and training_epochs(base) > 0:
        stretched = prune is not None and spec.finetune_factor > 1.0
        out.append(derive(base, "longer fine-tuning, distilled" if stretched else "distilled",
                          finetune=(longer if stretched else base.finetune).model_copy(
                              update={"distill": DistillSpec()})))
    if prune is not None and prune.structure != "m_by_n":
        seen = {prune.final_sparsity}
        for factor in spec.sparsity_factors:
            sparsity = round(prune.final_sparsity * factor, 2)
            if sparsity <= 0.0 or sparsity in seen:
                continue
            seen.add(sparsity)
            lower = prune.model_dump(mode="python")
            lower.update(final_sparsity=sparsity,
                         initial_sparsity=min(prune.initial_sparsity, sparsity),
                         per_layer={k: min(v, sparsity) for k, v in prune.per_layer.items()})
            label = f"sparsity {sparsity:.0%}"
            if prune.then_sparsity is not None:     # the unstructured pruning after the channels too
                lower["then_sparsity"] = round(prune.then_sparsity * factor, 2) or None
                label += f", then {lower['then_sparsity'] or 0:.0%}"
            out.append(derive(base, label, prune=lower, finetune=longer))
    if spec.try_dense and (prune is not None or base.cluster is not None or base.regularize is not None):
        qat = None if base.qat is None else base.qat.model_copy(update={"preserve": "none"})
        out.append(derive(base, "dense (no pruning)", prune=None, cluster=None, regularize=None,
                          qat=qat))
    return out


def _flat(data, prefix: str = "") -> dict:
    out = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict) and value:
                out.update(_flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
    return out


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
