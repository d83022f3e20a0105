"""A real export's report.json and manifest.json validate against the shipped JSON Schemas."""

import json

import jsonschema
import pytest

from edgeprune.schemas import shipped

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["report", "manifest"])
def test_export_output_validates_against_shipped_schema(digits_export, name):
    folder, _ = digits_export
    data = json.loads((folder / f"{name}.json").read_text())
    errors = list(jsonschema.Draft202012Validator(shipped(name)).iter_errors(data))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]]
