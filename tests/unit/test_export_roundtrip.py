"""Round trips: export a tiny model, load it in the real runtime, compare with Keras."""

import numpy as np
import pytest

from edgeprune.devices import RunRequest
from edgeprune.devices.local import LocalDevice
from edgeprune.export.onnx import to_onnx_float, to_onnx_int8
from edgeprune.export.tflite import to_tflite

TOL = {"float32": 1e-5, "float16": 5e-2, "dynamic": 0.3, "int8": 0.6}


def _run(path, x, engine="litert", delegate="xnnpack"):
    return LocalDevice().run(path, x, RunRequest(engine=engine, delegate=delegate, warmup=1, repeats=3))


@pytest.mark.parametrize("precision", ["float32", "dynamic", "float16", "int8"])
def test_to_tflite_outputs_match_keras(tmp_path, tiny_cnn, tiny_data, precision):
    x = tiny_data.x_test[:40]
    path = tmp_path / f"{precision}.tflite"
    path.write_bytes(to_tflite(tiny_cnn, precision, representative=tiny_data.x_train[:50]))
    result = _run(path, x)
    expected = tiny_cnn.predict(x, verbose=0)
    assert np.max(np.abs(result.outputs - expected)) < TOL[precision]
    agree = np.mean(result.outputs.argmax(1) == expected.argmax(1))
    assert agree >= (1.0 if precision == "float32" else 0.9)
    assert len(result.latency_ms) == 3


def test_to_tflite_int8_io_has_int8_tensors(tmp_path, tiny_cnn, tiny_data):
    from ai_edge_litert.interpreter import Interpreter

    data = to_tflite(tiny_cnn, "int8", representative=tiny_data.x_train[:50], int8_io=True)
    interp = Interpreter(model_content=data)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    path = tmp_path / "io.tflite"
    path.write_bytes(data)
    out = _run(path, tiny_data.x_test[:40], delegate="none").outputs
    assert np.mean(out.argmax(1) == tiny_cnn.predict(tiny_data.x_test[:40], verbose=0).argmax(1)) >= 0.9


def test_to_tflite_per_tensor_int8_has_one_weight_scale_per_tensor_and_still_matches(tmp_path, tiny_cnn,
                                                                                     tiny_data):
    from ai_edge_litert.interpreter import Interpreter

    def weight_scales(data):
        interp = Interpreter(model_content=data)
        return sorted(len(d["quantization_parameters"]["scales"]) for d in interp.get_tensor_details()
                      if d["dtype"] == np.int8 and len(d["shape"]) >= 2
                      and d["name"].endswith(("Conv2D", "MatMul")))

    rep = tiny_data.x_train[:50]
    per_channel = weight_scales(to_tflite(tiny_cnn, "int8", representative=rep))
    data = to_tflite(tiny_cnn, "int8", representative=rep, per_channel=False)
    assert per_channel and max(per_channel) > 1 and weight_scales(data) == [1] * len(per_channel)
    path = tmp_path / "per_tensor.tflite"
    path.write_bytes(data)
    x = tiny_data.x_test[:40]
    agree = np.mean(_run(path, x).outputs.argmax(1) == tiny_cnn.predict(x, verbose=0).argmax(1))
    assert agree >= 0.9


def test_to_tflite_is_byte_identical_when_repeated(tiny_cnn, tiny_data):
    a = to_tflite(tiny_cnn, "int8", representative=tiny_data.x_train[:50])
    b = to_tflite(tiny_cnn, "int8", representative=tiny_data.x_train[:50])
    assert a == b


def test_onnx_float_and_int8_match_keras(tmp_path, tiny_cnn, tiny_data):
    x = tiny_data.x_test[:40]
    settings = to_onnx_float(tiny_cnn, (8, 8, 1), tmp_path / "f.onnx")
    assert settings["opset"] == 17
    to_onnx_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", tiny_data.x_train[:50])
    expected = tiny_cnn.predict(x, verbose=0)
    f = _run(tmp_path / "f.onnx", x, engine="onnxruntime").outputs
    q = _run(tmp_path / "q.onnx", x, engine="onnxruntime").outputs
    assert np.max(np.abs(f - expected)) < 1e-4
    assert np.mean(q.argmax(1) == expected.argmax(1)) >= 0.85
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_onnx_export_is_byte_identical_when_repeated_in_one_process(tmp_path, tiny_cnn, tiny_data):
    for run in ("a", "b"):
        to_onnx_float(tiny_cnn, (8, 8, 1), tmp_path / f"{run}.onnx")
        to_onnx_int8(tmp_path / f"{run}.onnx", tmp_path / f"{run}_q.onnx", tiny_data.x_train[:50])
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert (tmp_path / "a_q.onnx").read_bytes() == (tmp_path / "b_q.onnx").read_bytes()
