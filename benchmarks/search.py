#!/usr/bin/env python3
"""What the search finds, next to the default recipe and the hand-written tfmot guide recipe.

For each model, on the ``host`` target, each row is one `edgeprune` command run in a fresh
process, measured from its report.json (the deployed artifact, validated by LiteRT):

- default: `edgeprune export` with the target's (and reference model's) default recipe,
  the accuracy back-off off (``--no-backoff``: the recipe as written);
- hand (tfmot guide): `edgeprune export --recipe` with the prune + cluster + int8 recipe of
  benchmarks/techniques.py (92% global magnitude pruning, 8 sparsity-preserving clusters,
  1.5x the fine-tuning epochs, int8 TFLite);
- search wN: `edgeprune search --max-trials T --workers N` in a fresh output folder;
  ``--workers ray2`` runs it with ``--ray`` on a Ray head this script starts on loopback
  with two CPUs (`ray start --head --num-cpus=2`), two workers.

Columns: deployed gzip bytes; x smaller = gzip of the source model as float32 TFLite / that;
points lost = baseline accuracy - deployed accuracy (x100); the target cost (latency_ms,
measured on this machine); whether every budget is met; the command's wall time.

Models: ``digits`` (the reference CNN, models/digits) and ``dscnn`` (benchmarks/zoo.py's
DS-CNN keyword-spotting shape, 49x10x1, trained here and cached in --work); ``mlp`` (an MLP
on digits, from benchmarks/techniques.py) as a third architecture.

Not run by CI. Timings on a shared machine are noisy: compare rows of one run.

    python benchmarks/search.py [--models digits,dscnn,mlp] [--trials 8] [--workers 1,2,ray2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import print_table, subprocess_env, work_folder  # noqa: E402


DSCNN_EPOCHS = 40


def prepare(kind: str, work: Path) -> tuple[list[str], list[str]]:
    """The model arguments of `edgeprune export/search` for ``kind`` (trained and saved
    once), and the arguments naming its starting recipe: the reference model starts from
    models/digits/recipe.toml on the host target's defaults, its recipe before any search
    (its host default, recipes/host.toml, is a search's choice). That is written out whole:
    a --recipe file replaces only the keys it has, so recipe.toml alone would inherit the
    rest (clusters, int8 settings) from recipes/host.toml."""
    if kind == "digits":
        from edgeprune.recipe import load_recipe
        from edgeprune.search.recipe_toml import write_recipe
        from edgeprune.targets import load_target

        path = work / "digits-recipe.toml"
        work.mkdir(parents=True, exist_ok=True)
        write_recipe(load_recipe(ROOT / "models" / "digits" / "recipe.toml", base=load_target("host").recipe),
                     path, header="models/digits/recipe.toml on target host's defaults, every key written")
        return [], ["--recipe", str(path)]
    folder = work / kind
    if not (folder / "model.keras").is_file():
        from edgeprune import keras_env

        folder.mkdir(parents=True, exist_ok=True)
        keras = keras_env.keras()
        if kind == "dscnn":
            import zoo

            # 40 epochs: trained to convergence (test accuracy 0.972, train 1.0). With zoo's
            # 15 it stops at 0.761 (train 0.836), and every compressed trial, fine-tuned further,
            # "loses" a negative number of points against that baseline.
            model, arrays = zoo.trained("dscnn", keras, epochs=DSCNN_EPOCHS)
        else:
            import techniques

            data = techniques.dataset()
            model = techniques.train_baseline(kind, data, 40)
            arrays = {"x_train": np.concatenate([data.x_train, data.x_val]),
                      "y_train": np.concatenate([data.y_train, data.y_val]),
                      "x_test": data.x_test, "y_test": data.y_test}
        model.save(folder / "model.keras")
        np.savez(folder / "data.npz", **arrays)
    return [str(folder / "model.keras"), "--data", str(folder / "data.npz")], []


def hand_recipe(work: Path, epochs: int) -> Path:
    """The tfmot guide's prune + cluster + int8 recipe (benchmarks/techniques.py, "pc")."""
    import techniques
    from edgeprune.search.recipe_toml import write_recipe

    _, recipe = techniques.recipes(epochs)["pc"]
    recipe = recipe.model_copy(update={"quantize": ("int8",), "formats": ("tflite",)})
    path = work / f"hand-{epochs}.toml"
    write_recipe(recipe, path, header="benchmarks/techniques.py 'pc': prune 92% global + cluster 8 + int8")
    return path


def run(cmd: list[str], out: Path, log: Path) -> tuple[dict | None, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgeprune", *cmd, "--out", str(out)],
                          capture_output=True, text=True, env=subprocess_env())
    seconds = time.perf_counter() - t0
    log.write_text(proc.stdout + "\n" + proc.stderr)
    report = out / "host" / "report.json"
    return (json.loads(report.read_text()) if report.is_file() and proc.returncode in (0, 3) else None,
            seconds, proc.returncode)


@contextmanager
def ray_head(cpus: int = 2):
    """A Ray head on loopback (edgeprune/search/ray_local.py) that sees this checkout."""
    from edgeprune.search.ray_local import loopback_head

    with loopback_head(cpus, env=subprocess_env(), timeout=90) as address:
        yield address


def row(model: str, method: str, report: dict | None, seconds: float, code: int, float_gzip) -> tuple:
    if report is None:
        return (model, method, "-", "-", "-", "-", f"exit {code}", f"{seconds:.0f}")
    arts = {a["name"]: a for a in report["artifacts"]}
    dep = arts[report["deploy"]]["measurements"]
    base = arts["baseline.keras"]["measurements"]["accuracy"]["value"]
    gz = dep["gzip_bytes"]["value"]
    lat = dep.get("latency_ms", {}).get("value")
    return (model, method, f"{gz:,}", f"{float_gzip / gz:.1f}" if float_gzip else "-",
            f"{(base - dep['accuracy']['value']) * 100:.2f}", f"{lat:.4f}" if lat else "-",
            "meets" if report["verdict"] == "pass" else "misses " + ",".join(
                b["name"] for b in report["budgets"] if b["verdict"] != "pass"), f"{seconds:.0f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,dscnn")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", default="1,2", help="worker counts to run the search with")
    parser.add_argument("--timeout", type=float, default=None, help="the search's --timeout")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = work_folder(args.work, "edgeprune-search-")
    rows = [("model", "method", "gzip B", "x smaller", "points lost", "latency_ms", "budgets", "wall s")]
    for kind in args.models.split(","):
        model, start = prepare(kind, work)
        folder = work / f"runs-{kind}"
        folder.mkdir(exist_ok=True)
        base_cmd = [*model, "--target", "host", *start]
        default, s, code = run(["export", *base_cmd, "--no-backoff"], folder / "default", folder / "default.log")
        float_gzip = None
        epochs = default["recipe"]["finetune"]["epochs"] if default else 4
        hand, hs, hcode = run(["export", *model, "--target", "host",
                               "--recipe", str(hand_recipe(work, epochs))],
                              folder / "hand", folder / "hand.log")
        searches = []
        for n in args.workers.split(","):
            on_ray = n.startswith("ray")
            extra = ["--max-trials", str(args.trials), "--workers", n[3:] if on_ray else n]
            if args.timeout:
                extra += ["--timeout", str(args.timeout)]
            if on_ray:
                with ray_head(int(n[3:])) as address:
                    rep, ss, scode = run(["search", *base_cmd, *extra, "--ray", address], folder / f"search-{n}",
                                         folder / f"search-{n}.log")
            else:
                rep, ss, scode = run(["search", *base_cmd, *extra], folder / f"search-w{n}",
                                     folder / f"search-w{n}.log")
            searches.append((n, rep, ss, scode))
            if rep is not None and float_gzip is None:
                float_gzip = rep["search"]["float32_gzip_bytes"]["value"]
        rows.append(row(kind, "default recipe", default, s, code, float_gzip))
        rows.append(row(kind, "hand (tfmot guide)", hand, hs, hcode, float_gzip))
        for n, rep, ss, scode in searches:
            label = f"search {n if str(n).startswith('ray') else 'w' + n}" + (f" ({len(rep['search']['trials'])} trials, #{rep['search']['chosen']['trial']}: "
                                      f"{rep['search']['chosen']['label']})" if rep else "")
            rows.append(row(kind, label, rep, ss, scode, float_gzip))
        print(f"  {kind}: done", file=sys.stderr, flush=True)
    print(f"\nhost target; search --max-trials {args.trials}; work folder {work}\n")
    print_table(rows)
    print("\nx smaller: gzip of the source model as float32 TFLite / the deployed file's gzip; "
          "points lost: baseline - deployed accuracy; latency_ms: measured on this machine (LiteRT)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
