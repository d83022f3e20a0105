"""Make a search's choice the reference model's default recipe for a target (maintainers).

    python -m edgeprune.search.adopt OUT/TARGET --model digits          # print the recipe
    python -m edgeprune.search.adopt OUT/TARGET --model digits --write  # and adopt it

OUT/TARGET is what ``edgeprune search MODEL --target TARGET`` wrote, starting from the
recipe the model has now for the target (checked: the chosen trial's parameters applied
to it must give the searched recipe). The search narrows each trial to its deployed
artifact; the adopted recipe is the chosen one widened back to every artifact the
model's recipe makes (the deployed file is converted from the same compressed model,
whatever else is exported beside it).

``--write`` writes ``models/MODEL/recipes/TARGET.toml`` (a complete recipe: the export of
MODEL for TARGET reads it instead of ``recipe.toml``; its header names the search) and
``TARGET.search.json`` beside it (the search as report.json recorded it: every trial, the
fronts, the choice, the deployed file's sha256 and sizes, the recipe it started from, and
the machine and library versions that made that sha256).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError, EdgepruneError
from ..recipe import Recipe, load_recipe


def base_recipe(model: str, target: str) -> Recipe:
    """The recipe the export of reference ``model`` for ``target`` uses now: the target's,
    then the model's recipe for it (``recipes/TARGET.toml``, else ``recipe.toml``). A
    search of the model for the target starts from it (unless given ``--recipe``)."""
    from .. import reference
    from ..targets import load_target

    recipe = load_target(target).recipe
    path = reference.recipe_path(model, target)
    return load_recipe(path, base=recipe) if path is not None else recipe


def widen(searched: Recipe, base: Recipe) -> Recipe:
    """``searched`` making every artifact ``base`` makes (and its own deployed one)."""
    precision, fmt = searched.deploy.split(".")
    quantize = base.quantize + ((precision,) if precision not in base.quantize else ())
    formats = base.formats + ((fmt,) if fmt not in base.formats else ())
    wide = Recipe.model_validate({**searched.model_dump(mode="python"), "quantize": quantize,
                                  "formats": formats})
    narrowed = Recipe.model_validate({**wide.model_dump(mode="python"), "quantize": (precision,),
                                      "formats": (fmt,)})
    if narrowed != searched:  # an invariant of the two updates above
        raise RuntimeError("widening the searched recipe changed more than its artifacts")
    return wide


def made_on() -> dict:
    """Where the adopted file's sha256 was made: the same recipe and seed give the same bytes
    with the same libraries on the same kind of CPU, and may not on another (TensorFlow's
    kernels differ by instruction set)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def _version(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cpu = platform.processor() or None
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": cpu, "python": platform.python_version(),
            **{name: _version(name) for name in ("tensorflow", "tf_keras",
                                                 "tensorflow-model-optimization", "ai-edge-litert")}}


def adopt(search_out: Path, model: str, write: bool) -> tuple[str, dict]:
    """The adopted recipe's TOML text and the search record; written when ``write``."""
    from .. import reference
    from .recipe_toml import dumps, write_recipe

    search_out = Path(search_out)
    report_path = search_out / "report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        section = report["search"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"not a search's output ({type(exc).__name__}: {exc})", where=str(report_path),
                          expected="the OUT/TARGET folder `edgeprune search` wrote",
                          fix="run `edgeprune search --target TARGET --out OUT` first") from None
    target = report["target"]["name"]
    if report.get("verdict") != "pass":
        raise ConfigError("the search's choice misses a budget: it is not a default", where=str(report_path),
                          fix="run a longer search, or relax the budget")
    from .choices import candidate

    searched = load_recipe(search_out / "recipe.toml")
    base = base_recipe(model, target)
    chosen = next(t for t in section["trials"] if t["number"] == section["chosen"]["trial"])
    if candidate(base, chosen["params"]).recipe != searched:
        raise ConfigError(f"the search did not start from the recipe {model} has now for {target}, so its "
                          "choice cannot be recorded as a step from it", where=str(search_out),
                          fix=f"run the search again: edgeprune search {model} --target {target} "
                              "(without --recipe or --epochs)")
    recipe = widen(searched, base)
    header = (f"The reference model's recipe for target {target}, chosen by `edgeprune search`\n"
              f"({len(section['trials'])} trials, {section['seconds']:.0f} s; trial {chosen['number']}: "
              f"{chosen['label']}):\n"
              f"deployed {report['deploy']} {chosen['gzip_bytes']:,} B gzip "
              f"({chosen.get('size_ratio') or 0:.1f}x smaller than the float32 TFLite), "
              f"{section['metric']} {chosen['metric']:.4f} (baseline {chosen['baseline_metric']:.4f}).\n"
              f"Searched with `edgeprune search --target {target} --max-trials {section.get('max_trials')}"
              + (f" --timeout {section['timeout_s']:g}" if section.get("timeout_s") else "")
              + f"` (sampler {section.get('sampler')});\nevery trial: {target}.search.json beside "
              f"this file. Made by\n"
              f"`python -m edgeprune.search.adopt OUT/{target} --model {model} --write`.")
    record = {"target": target, "model": model, "base": base.model_dump(mode="json"), "deploy": report["deploy"],
              "reproduce": section["chosen"]["reproduce"], "chosen_sha256": chosen.get("sha256"),
              "made_on": made_on(), "search": section}
    if write:
        folder = reference.models_dir() / model / "recipes"
        folder.mkdir(exist_ok=True)
        write_recipe(recipe, folder / f"{target}.toml", header=header)
        # the search's own folder means nothing in the repository: OUT stands for it
        text = json.dumps(record, indent=1, default=str).replace(str(search_out.parent.resolve()), "OUT")
        (folder / f"{target}.search.json").write_text(text + "\n", encoding="utf-8")
    return dumps(recipe, header), record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeprune.search.adopt", description=__doc__.split("\n")[0])
    parser.add_argument("search_out", type=Path, help="the OUT/TARGET folder `edgeprune search` wrote")
    parser.add_argument("--model", required=True, help="the reference model (models/NAME)")
    parser.add_argument("--write", action="store_true", help="write models/MODEL/recipes/TARGET.toml and .search.json")
    args = parser.parse_args(argv)
    try:
        text, record = adopt(args.search_out, args.model, args.write)
    except EdgepruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(text, end="")
    if args.write:
        print(f"wrote models/{args.model}/recipes/{record['target']}.toml and .search.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
