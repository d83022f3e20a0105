"""``edgeprune search``: a thin click command over :mod:`edgeprune.search.command`.

Exit codes: 0 the chosen artifact meets every budget, 2 bad input, or no recipe tried
meets every budget (the message names the budgets), 4 a device or the Ray cluster could
not be reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .limits import EPOCHS_MAX, SEED_MAX
from .quiet import session, verbosity_options


@click.command("search")
@click.argument("model", required=False)
@click.option("--target", "-t", required=True, help="Target name (see `edgeprune targets`) or a profile .toml.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("dist"), show_default=True,
              help="Output folder: the chosen export goes to OUT/TARGET/, the study and the trials "
                   "to OUT/TARGET.search/.")
@click.option("--data", help="As for export: an .npz, a folder of image class folders, or MODULE:FUNCTION.")
@click.option("--recipe", type=click.Path(path_type=Path),
              help="A recipe .toml the search starts from (its epochs, seed and the rest).")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), help="Overrides the recipe's seed.")
@click.option("--epochs", "finetune_epochs", type=click.IntRange(1, EPOCHS_MAX),
              help="Fine-tuning epochs of every trial (overrides the recipe).")
@click.option("--train-epochs", type=click.IntRange(1, EPOCHS_MAX), help="Reference models only: training epochs.")
@click.option("--metric", help="A metric MODULE:FUNCTION, as for export.")
@click.option("--metric-direction", type=click.Choice(["higher", "lower"]))
@click.option("--max-trials", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Trials in the study in all (a resumed study counts those it has).")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds after which no worker starts a trial.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Trials run at once: local processes, or Ray tasks with --ray.")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Run the trials as Ray tasks on the cluster at ADDRESS (pip install 'edgeprune[ray]'); "
                   "model, data and --out must be on a disk every node sees.")
@click.option("--storage", metavar="URL", help="The study's database (an SQLAlchemy URL), to share it "
                                               "between machines (default: SQLite in OUT/TARGET.search/).")
@click.option("--sampler", type=click.Choice(["tpe", "nsga2"]), default="tpe", show_default=True,
              help="Optuna's multi-objective sampler.")
@click.option("--deploy", "deploys", help="Deployable artifacts to search, comma-separated "
                                          "(default: those the recipe makes, float32 left out).")
@click.option("--no-pruning", is_flag=True, help="Never stop a trial early (the median rule).")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout instead of the table.")
@verbosity_options
def search(model, target, out_dir, data, recipe, seed, finetune_epochs, train_epochs, metric,
           metric_direction, max_trials, timeout, workers, ray_address, storage, sampler, deploys,
           no_pruning, as_json, verbose, quiet):
    """Search the recipes for MODEL on TARGET; export the smallest that meets every budget.

    Each trial is a full export of one candidate recipe, validated like `export`. The
    chosen one is written to OUT/TARGET/ as `export` writes it, with recipe.toml, which
    `edgeprune export MODEL --target TARGET --recipe OUT/TARGET/recipe.toml --seed S`
    reproduces byte for byte, and a `search` section in report.json.
    """
    from .search.command import SearchOptions, run_search

    with session(verbose, quiet) as log:
        result = run_search(SearchOptions(
            target=target, out_dir=out_dir, model=model, data=data, recipe=recipe, seed=seed,
            finetune_epochs=finetune_epochs, train_epochs=train_epochs, metric=metric,
            metric_direction=metric_direction, max_trials=max_trials, timeout=timeout, workers=workers,
            ray=ray_address, storage=storage, sampler=sampler,
            deploys=tuple(d.strip() for d in deploys.split(",") if d.strip()) if deploys else None,
            prune_trials=not no_pruning, log=log))
    if as_json:
        click.echo(json.dumps(result.report, indent=2, default=str))
        return
    from .search.table import render

    click.echo(render(result.report))
    if not quiet:
        click.echo(f"wrote {result.out_dir} in {result.seconds:.1f}s")
