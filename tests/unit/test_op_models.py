"""Per-operator cost: one-op models cut from a .tflite, timed by the runner on this machine."""

import numpy as np
import pytest

from edgeprune.devices import RunRequest
from edgeprune.devices.local import LocalDevice
from edgeprune.export.tflite import to_tflite
from edgeprune.measure.op_models import split_ops
from edgeprune.measure.ops import ops_figure, render_top_ops
from edgeprune.measure.tflite_graph import read_graph
from edgeprune.runtimes import runner
from edgeprune.targets import load_target


@pytest.fixture(scope="module")
def int8_cnn(tiny_int8_tflite):
    return tiny_int8_tflite


def test_split_ops_gives_one_loadable_model_per_op_with_the_ops_output_shape(int8_cnn):
    from ai_edge_litert.interpreter import Interpreter

    graph = read_graph(int8_cnn)
    ops = split_ops(int8_cnn)
    assert [op.op for op in ops] == [op.name for op in graph.ops]
    assert any(op.name == "conv" for op in ops)          # the Keras layer, read from the tensors
    for op, info in zip(ops, graph.ops):
        interp = Interpreter(model_content=op.data)
        interp.allocate_tensors()
        outputs = interp.get_output_details()
        assert [tuple(d["shape"]) for d in outputs] == [t.shape for t in info.outputs]


def test_runner_times_each_op_model_when_request_has_ops(int8_cnn, tmp_path, tiny_data):
    from edgeprune.devices.job import job_request

    request = RunRequest(engine="litert", warmup=1, repeats=3, op_repeats=4)
    payload, ops = job_request(request, int8_cnn, tmp_path, absolute=True)
    result, _ = runner.run_job(payload, tiny_data.x_test[:2], str(int8_cnn))
    assert [row["index"] for row in result["ops"]] == [op.index for op in ops]
    assert all(len(row["latency_ms"]) == 4 for row in result["ops"])


def test_local_run_reports_ops_whose_shares_sum_to_one_and_table_names_the_costliest(int8_cnn,
                                                                                       tiny_data):
    profile = load_target("host")
    run = LocalDevice(profile).run(int8_cnn, tiny_data.x_test[:4],
                                   RunRequest(engine="litert", warmup=2, repeats=5, op_repeats=5))
    fig = ops_figure(run, profile)
    assert fig["method"] == "measured" and fig["unit"] == "ms"
    assert all(r["ms"] > 0 and r["instructions"] is None and r["estimate_ms"] is None
               for r in fig["rows"])
    assert sum(r["share"] for r in fig["rows"]) == pytest.approx(1.0, abs=1e-4)
    top = max(fig["rows"], key=lambda r: r["share"])
    table = render_top_ops("model_int8.tflite", fig)
    assert top["op"] in table[1] and f"{top['share']:.1%}" in table[1]


def test_local_run_has_no_ops_when_not_asked(int8_cnn, tiny_data):
    run = LocalDevice().run(int8_cnn, tiny_data.x_test[:2], RunRequest(engine="litert", warmup=1,
                                                                        repeats=2))
    assert run.ops is None and np.asarray(run.outputs).shape == (2, 10)


def test_ops_folded_at_load_are_listed_as_not_run_with_the_reason(tiny_cnn, tmp_path, tiny_data):
    path = tmp_path / "model_float16.tflite"
    path.write_bytes(to_tflite(tiny_cnn, "float16"))
    profile = load_target("host")
    run = LocalDevice(profile).run(path, tiny_data.x_test[:2],
                                   RunRequest(engine="litert", warmup=1, repeats=2, op_repeats=2))
    fig = ops_figure(run, profile)
    folded = [r for r in fig["rows"] if r["op"] == "DEQUANTIZE"]
    assert folded and all(r["ms"] is None and r["share"] == 0.0 for r in folded)
    assert len(fig["ops_not_run"]) == len(folded) and "once when loading" in fig["ops_not_run"][0]
    assert {r["op"] for r in fig["rows"] if r["ms"]} == {"CONV_2D", "RESHAPE", "FULLY_CONNECTED"}
