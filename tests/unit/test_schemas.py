"""The shipped JSON Schemas are the models' (never drift), and outputs validate against them."""

import copy
import json

import jsonschema
import pytest
from check_reports import make_report, measurement

from edgeprune.schemas import NAMES, dumps, generate, shipped


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = shipped(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_schema_equals_the_one_generated_from_the_models(name):
    from importlib import resources

    text = resources.files("edgeprune.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    assert text == dumps(generate(name)), "run `python -m edgeprune.schemas` and commit the files"


def test_report_schema_accepts_a_report_and_refuses_a_figure_without_method():
    report = make_report("rpi4")
    assert list(validator("report").iter_errors(report)) == []
    bad = copy.deepcopy(report)
    del measurement(bad, "int8.tflite", "size_bytes")["method"]
    errors = list(validator("report").iter_errors(bad))
    assert [list(e.absolute_path)[-2:] for e in errors] == [["measurements", "size_bytes"]]
    assert any("'method' is a required property" in c.message for c in errors[0].context)


def test_check_json_output_validates_against_check_schema(tmp_path):
    from click.testing import CliRunner

    from edgeprune.check_cli import check

    base, rerun = make_report("host"), make_report("host", seed=1)
    measurement(rerun, "int8.tflite", "size_bytes")["value"] += 1
    (tmp_path / "b.json").write_text(json.dumps(base))
    (tmp_path / "r.json").write_text(json.dumps(rerun))
    out = CliRunner().invoke(check, [str(tmp_path / "r.json"), "--baseline", str(tmp_path / "b.json"),
                                     "--no-remeasure", "--json"])
    assert out.exit_code == 3, out.output
    result = json.loads(out.output)
    assert list(validator("check").iter_errors(result)) == []
    assert any(r["verdict"] == "regressed" for r in result["rows"])
