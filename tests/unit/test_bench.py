"""`edgeprune bench`: measured latency where the target is this machine, the labelled
estimate (and no wall time) on an emulated board, per-op rows on both."""

import pytest

from edgeprune.bench import bench_artifact, render
from edgeprune.schemas import shipped


def assert_valid_bench_json(result):
    import json

    import jsonschema

    jsonschema.validate(json.loads(json.dumps(result)), shipped("bench"), cls=jsonschema.Draft202012Validator)


@pytest.fixture(scope="module")
def int8_file(tiny_int8_tflite):
    return tiny_int8_tflite


def test_bench_on_host_measures_latency_and_times_each_op(int8_file):
    result = bench_artifact(int8_file, "host", repeats=20, log=lambda message: None)
    assert result["latency_ms"]["method"] == "measured" and result["latency_ms"]["value"] > 0
    assert "latency_estimate_ms" not in result and "instructions_per_invoke" not in result
    assert result["ops"]["method"] == "measured" and all(r["ms"] > 0 for r in result["ops"]["rows"])
    assert "(measured)" in render(result)
    assert_valid_bench_json(result)


@pytest.mark.qemu
def test_bench_on_emulated_board_gives_the_labelled_estimate_and_no_wall_time(int8_file):
    from edgeprune.devices.qemu_root import prepare_root
    from edgeprune.targets import load_target

    prepare_root(log=lambda message: None)
    result = bench_artifact(int8_file, "rpi4", log=lambda message: None)
    assert "latency_ms" not in result
    est, cal = result["latency_estimate_ms"], load_target("rpi4").calibration
    assert est["method"] == "estimated" and est["threads"] == 4 and est["value"] > 0
    assert est["error_band"] == {"rel": cal.error_rel, "rows": cal.error_rows, "how": cal.error_how}
    rows = result["ops"]["rows"]
    assert result["ops"]["method"] == "estimated" and all(r["estimate_ms"] > 0 for r in rows)
    assert {r["op"] for r in rows} >= {"CONV_2D", "FULLY_CONNECTED"}
    text = render(result)
    assert f"estimated, 4 threads, +-{cal.error_rel:.0%} on {cal.error_rows} published figures" in text
    assert "0.0000 ms" not in text and "top" in text
    assert_valid_bench_json(result)
