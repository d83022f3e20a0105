"""The per-tensor and per-op breakdowns read from real files, which `check` names growth from."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from check_reports import make_report, row
from tflite_chain import fc_chain

from edgeprune.check import check_reports
from edgeprune.errors import InputError
from edgeprune.measure.breakdown import breakdown_onnx, breakdown_tflite


def tiny_onnx(path: Path, units: int, relus: int = 1) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, units), np.float32), "dense/kernel")
    bias = numpy_helper.from_array(np.zeros(units, np.float32), "dense/bias")
    nodes = [helper.make_node("MatMul", ["x", "dense/kernel"], ["mm"]),
             helper.make_node("Add", ["mm", "dense/bias"], ["y0"])]
    nodes += [helper.make_node("Relu", [f"y{i}"], [f"y{i + 1}"]) for i in range(relus)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info(f"y{relus}", TensorProto.FLOAT, [1, units])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_breakdown_tflite_counts_constant_bytes_and_ops(tmp_path):
    got = breakdown_tflite(fc_chain(tmp_path / "m.tflite", layers=1, width=4))
    assert got == {"tensors": {"dense/MatMul": 4 * 3 * 4, "dense/bias": 4 * 4},
                   "ops": {"FULLY_CONNECTED": 1}}


def test_breakdown_tflite_raises_input_error_when_file_not_tflite(tmp_path):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(InputError, match="m.tflite"):
        breakdown_tflite(bad)


def test_breakdown_onnx_counts_initializer_bytes_and_ops(tmp_path):
    got = breakdown_onnx(tiny_onnx(tmp_path / "m.onnx", units=4, relus=2))
    assert got == {"tensors": {"dense/bias": 16, "dense/kernel": 48},
                   "ops": {"Add": 1, "MatMul": 1, "Relu": 2}}


def test_check_reports_names_grown_layer_when_breakdowns_come_from_real_files(tmp_path):
    base = make_report()
    small_t, big_t = (fc_chain(tmp_path / f"{u}.tflite", layers=1, width=u) for u in (4, 6))
    small_o, big_o = (tiny_onnx(tmp_path / f"{r}.onnx", 4, r) for r in (1, 2))
    rerun = copy.deepcopy(base)
    for report, tfl, onx in ((base, small_t, small_o), (rerun, big_t, big_o)):
        for art, path, fn in (("int8.tflite", tfl, breakdown_tflite),
                              ("int8.onnx", onx, breakdown_onnx)):
            m = next(a for a in report["artifacts"] if a["name"] == art)["measurements"]
            m["breakdown"] = fn(path)
            m["size_bytes"]["value"] = path.stat().st_size
    result = check_reports(rerun, base)
    assert row(result, "size_bytes").verdict == "regressed"
    tfl_growth = result.growth_for("host", "int8.tflite")
    assert tfl_growth.tensors[0] == ("dense/MatMul", 48, 72) and not tfl_growth.ops
    assert result.growth_for("host", "int8.onnx").ops == [("Relu", 1, 2)]
