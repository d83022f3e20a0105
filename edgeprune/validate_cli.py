"""``edgeprune validate``: a thin click command over :mod:`edgeprune.validate_external`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import EXIT_BUDGET, EXIT_OK
from .quiet import session, verbosity_options


@click.command("validate")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--target", "-t", required=True, help="Target name (see `edgeprune targets`) or a profile .toml.")
@click.option("--data", required=True,
              help="An .npz with x_train, y_train, x_test, y_test; a folder of image class folders; "
                   "or a loader MODULE:FUNCTION.")
@click.option("--reference", help="The model before compression (Keras file, .tflite or .onnx): the "
                                  "baseline for max_accuracy_drop and max_metric_drop.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("dist"), show_default=True,
              help="Output folder; the run writes OUT/TARGET/.")
@click.option("--recipe", type=click.Path(path_type=Path),
              help="A recipe .toml; only its [task] and [data] sections apply.")
@click.option("--emit-c/--no-emit-c", default=None, help="Also write the artifact as C sources (a .tflite).")
@click.option("--c-symbol", help="C name of the model array (default g_model).")
@click.option("--arena-headroom", type=click.FloatRange(min=0, max=10),
              help="Fraction added to the measured arena for the ARENA_BYTES macro (default 0.1).")
@click.option("--metric", help="A metric MODULE:FUNCTION, fn(y_true, y_pred) -> float.")
@click.option("--metric-direction", type=click.Choice(["higher", "lower"]),
              help="Whether --metric is better higher or lower.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout instead of the table.")
@verbosity_options
def validate(artifact, target, data, reference, out_dir, recipe, emit_c, c_symbol, arena_headroom, metric,
             metric_direction, as_json, verbose, quiet):
    """Validate a .tflite or .onnx made elsewhere on TARGET: metrics on the test split,
    size, latency, budgets, compatibility rules, firmware sources; compresses nothing."""
    from .validate_external import ValidateOptions, run_validate

    with session(verbose, quiet) as log:
        result = run_validate(ValidateOptions(artifact=artifact, target=target, data=data, out_dir=out_dir,
                                              reference=reference, recipe=recipe, emit_c=emit_c,
                                              c_symbol=c_symbol, arena_headroom=arena_headroom, metric=metric,
                                              metric_direction=metric_direction, log=log))
    report = result.report.to_dict()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        from .report.table import render

        click.echo(render(report))
        if not quiet:
            click.echo(f"wrote {result.out_dir} in {result.seconds:.1f}s")
    sys.exit(EXIT_OK if report["verdict"] == "pass" else EXIT_BUDGET)
