"""Where each value of the effective recipe came from.

The recipe a run uses is layered (see ``pipeline.resolve_inputs``): the target
profile's ``[recipe]`` table (every default filled in), then a reference model's own
``recipe.toml``, then ``--recipe FILE`` (each replaces whole top-level sections), then
the flags ``--seed`` and ``--epochs``, then the back-off's choice. :func:`trace` names,
for each top-level key, the last layer that set it; the report keeps it as
``compression.recipe_sources`` and the table prints it once.
"""

from __future__ import annotations

from pathlib import Path

from .config_io import read_toml


def trace(target: str, model_recipe: Path | None, recipe_file: Path | None, seed: int | None,
          finetune_epochs: int | None, keys) -> dict[str, str]:
    """``{key: source}`` for every top-level recipe key (``finetune.epochs`` apart when a flag set it)."""
    sources = {key: f"target {target}" for key in keys}
    for label, path in ((f"model recipe {model_recipe}", model_recipe), (f"--recipe {recipe_file}", recipe_file)):
        if path is not None:
            for key in read_toml(Path(path), what="recipe"):
                sources[key] = label
    if seed is not None:
        sources["seed"] = "--seed"
    if finetune_epochs is not None:
        sources["finetune.epochs"] = "--epochs"
    return sources


def for_export(opts, recipe, target_name: str) -> dict[str, str]:
    """The trace of an export's options (``opts``: pipeline.ExportOptions), for ``recipe`` on
    the target named ``target_name``."""
    from . import reference

    name = opts.model or reference.DEFAULT_MODEL
    is_ref = opts.model is None or (reference.is_reference(name) and not Path(name).exists())
    return trace(opts.target if isinstance(opts.target, str) else str(opts.target),
                 reference.recipe_path(name, target_name) if is_ref else None, opts.recipe, opts.seed,
                 opts.finetune_epochs, type(recipe).model_fields)


def after_backoff(sources: dict[str, str], before, after) -> dict[str, str]:
    """Mark the keys the back-off changed."""
    out = dict(sources)
    for key in type(after).model_fields:
        if getattr(before, key) != getattr(after, key):
            out[key] = "back-off"
    return out


def lines(recipe: dict, sources: dict[str, str]) -> list[str]:
    """``recipe from SOURCE: key value; ...`` lines, one per source, for the values that matter most."""
    items: list[tuple[str, str]] = []
    prune = recipe.get("prune")
    items.append(("prune", "off" if not prune else f"{prune['structure']} to {prune['final_sparsity']:.2f} "
                                                   f"({prune['scope']})"
                  + (f", then unstructured to {prune['then_sparsity']:.2f}" if prune.get("then_sparsity") else "")))
    ft = recipe.get("finetune", {})
    items.append(("finetune.epochs" if "finetune.epochs" in sources else "finetune",
                  f"{ft.get('epochs')} fine-tuning epochs"))
    items.append(("finetune", f"batch {ft.get('batch_size')}, learning rate {ft.get('learning_rate'):g}"))
    for key in ("regularize", "cluster", "qat"):
        if recipe.get(key):
            items.append((key, f"{key} on"))
    items.append(("quantize", "precisions " + ", ".join(recipe.get("quantize", []))))
    items.append(("deploy", f"deploy {recipe.get('deploy')}"))
    items.append(("seed", f"seed {recipe.get('seed')}"))
    by_source: dict[str, list[str]] = {}
    for key, text in items:
        by_source.setdefault(sources.get(key, "?"), []).append(text)
    return [f"recipe from {src}: " + "; ".join(texts) for src, texts in by_source.items()]
