"""The command line: parse options, build a config, call the Python API, print.

Exit codes: 0 all budgets met, 1 internal error (a bug: traceback shown), 2 bad
input or configuration, 3 a budget or regression check failed, 4 the device or
its runtime could not be reached. See edgeprune/errors.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_BUDGET, EXIT_OK, EdgepruneError
from .limits import EPOCHS_MAX, SEED_MAX
from .quiet import session as _session, verbosity_options


class _FiniteRange(click.FloatRange):
    """click.FloatRange lets NaN through (every comparison with it is false)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if value != value:
            self.fail("nan is not a number in the range", param, ctx)
        return value


_FINITE_HEADROOM = _FiniteRange(min=0, max=10)


class _Group(click.Group):
    """Turns EdgepruneError into its exit code and a message; anything else is a bug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgepruneError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            from .interrupt import exit_code

            click.echo("interrupted: the previous output is untouched and nothing was left behind", err=True)
            ctx.exit(exit_code())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeprune")
def cli() -> None:
    """Compress, export and validate a Keras model for an edge device."""


@cli.command()
@click.argument("model", required=False)
@click.option("--target", "-t", "targets", required=True, multiple=True,
              help="Target name (see `edgeprune targets`) or a profile .toml; repeat it to export for "
                   "several targets in one run (compressed once per distinct recipe).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("dist"), show_default=True,
              help="Output folder; the run writes OUT/TARGET/ (and OUT/summary.json for several targets).")
@click.option("--data", help="An .npz with x_train, y_train, x_test, y_test; a folder of image class folders; "
                             "or a loader MODULE:FUNCTION.")
@click.option("--recipe", type=click.Path(path_type=Path), help="A recipe .toml; its sections replace the target's.")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), help=f"Overrides the recipe's seed (0 to {SEED_MAX}).")
@click.option("--epochs", "finetune_epochs", type=click.IntRange(0, EPOCHS_MAX),
              help="Fine-tuning epochs (overrides the recipe).")
@click.option("--train-epochs", type=click.IntRange(1, EPOCHS_MAX), help="Reference models only: training epochs.")
@click.option("--emit-c/--no-emit-c", default=None,
              help="Also write the deployed .tflite as C sources (default: the target's emit_c).")
@click.option("--c-symbol", help="C name of the model array and prefix of the other names (default g_model).")
@click.option("--arena-headroom", type=_FINITE_HEADROOM,
              help="Fraction added to the measured arena for the ARENA_BYTES macro (default 0.1).")
@click.option("--metric", help="A metric MODULE:FUNCTION, fn(y_true, y_pred) -> float, reported and "
                               "judged by budgets.max_metric_drop.")
@click.option("--metric-direction", type=click.Choice(["higher", "lower"]),
              help="Whether --metric is better higher or lower (else FUNCTION.greater_is_better).")
@click.option("--backoff/--no-backoff", default=None,
              help="When the deployed file misses its quality budget, try gentler recipes (lower "
                   "sparsity, longer fine-tuning, no pruning) within recipe.backoff's time budget. "
                   "Default: on for the default recipe, off with --recipe or --epochs.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout instead of the table.")
@verbosity_options
def export(model, targets, out_dir, data, recipe, seed, finetune_epochs, train_epochs, emit_c, c_symbol,
           arena_headroom, metric, metric_direction, backoff, as_json, verbose, quiet):
    """Compress MODEL, export it, validate the exported files on TARGET and report.

    MODEL is a tf_keras .keras/.h5 file, a SavedModel directory, a .keras file saved
    by Keras 3, or a reference model name (default: digits, with its own data).
    """
    from .pipeline import ExportOptions, run_export

    with _session(verbose, quiet) as log:
        opts = ExportOptions(target=targets[0], out_dir=out_dir, model=model, data=data, recipe=recipe,
                             seed=seed, finetune_epochs=finetune_epochs, train_epochs=train_epochs,
                             emit_c=emit_c, c_symbol=c_symbol, arena_headroom=arena_headroom, metric=metric,
                             metric_direction=metric_direction, backoff=backoff, log=log)
        if len(targets) > 1:
            from .fleet import run_targets

            fleet = run_targets(opts, list(targets), log=log)
        else:
            result = run_export(opts)
    if len(targets) > 1:
        from .report.fleet_table import render_targets

        click.echo(json.dumps(fleet.summary, indent=2) if as_json else render_targets(fleet.summary))
        sys.exit(fleet.exit_code)
    report = result.report.to_dict()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        from .report.table import render

        click.echo(render(report))
        if not quiet:
            click.echo(f"wrote {result.out_dir} in {result.seconds:.1f}s")
    sys.exit(EXIT_OK if report["verdict"] == "pass" else EXIT_BUDGET)


@cli.group(invoke_without_command=True)
@click.pass_context
def targets(ctx):
    """List target profiles; `targets show NAME` prints one."""
    if ctx.invoked_subcommand is None:
        from .targets import available_targets, load_target

        for name, path in available_targets().items():
            try:
                profile = load_target(path)
                click.echo(f"{name:16} {profile.runtime.engine:12} {profile.device.kind:6} {profile.description}")
            except EdgepruneError as exc:
                click.echo(f"{name:16} INVALID: {str(exc).splitlines()[0]}")


@targets.command("show")
@click.argument("name")
def targets_show(name):
    """Print a target profile with every default filled in, as JSON."""
    from .targets import load_target

    click.echo(json.dumps(load_target(name).model_dump(mode="json"), indent=2))
    click.echo("note: `recipe` is this target's default; an export may override it: a reference model's "
               "own recipe.toml, then --recipe FILE, then --seed and --epochs. The export prints the recipe "
               "it used with the source of each value (report.json: compression.recipe_sources).", err=True)


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--target", "-t", required=True, help="Target name or profile .toml.")
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Timed invokes (default: the device's).")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement as JSON.")
@verbosity_options
def bench(artifact, target, repeats, as_json, verbose, quiet):
    """Measure an existing .tflite or .onnx on TARGET, without compressing anything."""
    from .bench import bench_artifact

    with _session(verbose, quiet) as log:
        result = bench_artifact(artifact, target, repeats=repeats, log=log)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        from .bench import render

        click.echo(render(result))


from .check_cli import check  # noqa: E402  (each command lives in its own module)
from .devices.commands import prepare_emulator  # noqa: E402
from .search_cli import search  # noqa: E402
from .validate_cli import validate  # noqa: E402

cli.add_command(check)
cli.add_command(prepare_emulator)
cli.add_command(search)
cli.add_command(validate)


def main() -> None:
    from .interrupt import exit_if_interrupted, install_handlers

    install_handlers()  # SIGTERM unwinds like Ctrl-C: staging and temporary folders are removed
    try:
        cli(prog_name="edgeprune")
    except SystemExit as done:
        exit_if_interrupted(done.code if isinstance(done.code, int) else 1)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
