"""The JSON Schemas of edgeprune's outputs, generated from the pydantic models the code
builds and checks them with, and shipped in this package (docs/schemas.md):

- ``report.schema.json``: report.json (:class:`edgeprune.report.schema.Report`);
- ``manifest.schema.json``: manifest.json (:class:`edgeprune.report.manifest.Manifest`);
- ``bench.schema.json``: ``edgeprune bench --json`` (:class:`edgeprune.report.bench_model.BenchResult`);
- ``check.schema.json``: ``edgeprune check --json`` (:class:`edgeprune.check.output_model.CheckOutput`).

``python -m edgeprune.schemas`` writes them again after a model changes; a test fails
while the shipped files differ from the models.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"
NAMES = ("report", "manifest", "bench", "check")


def _models() -> dict[str, Any]:
    from ..check.output_model import CheckOutput
    from ..report.bench_model import BenchResult
    from ..report.manifest import Manifest
    from ..report.schema import Report

    return {"report": Report, "manifest": Manifest, "bench": BenchResult, "check": CheckOutput}


def generate(name: str) -> dict:
    """The schema of output ``name`` (one of :data:`NAMES`), from its model."""
    model = _models()[name]
    schema = model.model_json_schema(mode="serialization")
    if name == "report":
        schema = _with_figures(schema)
    return {"$schema": DIALECT, "$id": f"urn:edgeprune:schema:{name}", **schema}


def _with_figures(schema: dict) -> dict:
    """An artifact's ``measurements`` are kept as plain dicts in the code and checked against
    :class:`~edgeprune.report.figures.Measurements`; the schema says so by referring to it."""
    from ..report.figures import Measurements

    figures = Measurements.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
    defs = {**schema.get("$defs", {}), **figures.pop("$defs", {}), "Measurements": figures}
    record = defs["ArtifactRecord"]["properties"]["measurements"]
    defs["ArtifactRecord"]["properties"]["measurements"] = {
        "$ref": "#/$defs/Measurements", **{k: v for k, v in record.items() if k in ("default",)}}
    return {**schema, "$defs": defs}


def shipped(name: str) -> dict:
    """The schema file shipped in this package."""
    return json.loads(resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8"))


def dumps(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all() -> list[str]:
    """Write every schema beside this module (after a model changed); returns the paths."""
    from pathlib import Path

    here = Path(__file__).parent
    out = []
    for name in NAMES:
        path = here / f"{name}.schema.json"
        path.write_text(dumps(generate(name)), encoding="utf-8")
        out.append(str(path))
    return out
