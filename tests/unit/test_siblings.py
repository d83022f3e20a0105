"""sibling_gaps(): one precision in two formats must score alike; the gap is flagged with its cause."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.recipe import OnnxQuantSpec
from edgeprune.report.schema import ArtifactRecord, figure
from edgeprune.siblings import qdq_reference_accuracy, sibling_gaps, weight_granularity


def _record(name, accuracy, settings=None):
    precision, fmt = name.split(".")
    return ArtifactRecord(name=name, format=fmt, precision=precision, settings=settings or {},
                          measurements={"accuracy": figure(accuracy, "fraction", "litert")})


@pytest.fixture(scope="module")
def files(tiny_cnn, tiny_data, tmp_path_factory):
    from edgeprune.export.onnx import to_onnx_float, to_onnx_int8
    from edgeprune.export.tflite import to_tflite

    folder = tmp_path_factory.mktemp("siblings")
    rep = tiny_data.x_train[:50]
    to_onnx_float(tiny_cnn, (8, 8, 1), folder / "f.onnx")
    settings = to_onnx_int8(folder / "f.onnx", folder / "q.onnx", rep)
    to_onnx_int8(folder / "f.onnx", folder / "pt.onnx", rep, OnnxQuantSpec(per_channel=False))
    (folder / "q.tflite").write_bytes(to_tflite(tiny_cnn, "int8", representative=rep))
    return folder, settings


def test_sibling_gaps_flags_only_a_gap_beyond_the_tolerance():
    records = [_record("int8.tflite", 0.90), _record("int8.onnx", 0.897),
               _record("float32.tflite", 0.95), _record("float32.onnx", 0.90)]
    gaps = sibling_gaps(records, {}, np.zeros((1, 2)), np.zeros(1), 0.005)
    assert set(gaps) == {"int8.onnx", "float32.onnx"}
    assert not gaps["int8.onnx"]["flagged"] and gaps["int8.onnx"]["against"] == "int8.tflite"
    flagged = gaps["float32.onnx"]
    assert flagged["flagged"] and flagged["value"] == pytest.approx(0.05) and flagged["tolerance"] == 0.005
    assert "converters differ" in flagged["likely_cause"]


def test_onnx_int8_settings_state_the_weight_range_and_granularity(files):
    folder, settings = files
    assert settings["weights"] == "int8, 7-bit range per-channel" and settings["calibration"] == "MinMax"
    assert weight_granularity(folder / "q.onnx") == "2 of 2 weight tensors"
    assert weight_granularity(folder / "pt.onnx") == "0 of 2 weight tensors"
    assert weight_granularity(folder / "q.tflite").endswith("of 2 weight tensors")


def test_likely_cause_blames_the_kernels_when_the_qdq_reference_scores_like_the_sibling(files, tiny_data):
    folder, settings = files
    x, y = tiny_data.x_test, tiny_data.y_test
    reference = qdq_reference_accuracy(folder / "q.onnx", x, y)
    from edgeprune.devices import RunRequest
    from edgeprune.devices.local import LocalDevice

    fused = LocalDevice().run(folder / "q.onnx", x, RunRequest("onnxruntime", warmup=0, repeats=1)).outputs
    assert reference == pytest.approx(np.mean(fused.argmax(1) == y), abs=1.5 / len(y))  # 7-bit: no saturation
    # As measured on a CPU whose fused int8 kernels saturate: the file itself is fine.
    records = [_record("int8.tflite", reference), _record("int8.onnx", reference - 0.08, settings)]
    gap = sibling_gaps(records, {"int8.onnx": folder / "q.onnx"}, x, y, 0.005)["int8.onnx"]
    assert gap["flagged"] and gap["likely_cause"].startswith("onnxruntime's fused int8 kernels on this machine")


def test_likely_cause_names_per_tensor_weights_when_the_file_itself_scores_lower(files, tiny_data):
    folder, _ = files
    records = [_record("int8.tflite", 1.0, {"representative_samples": 50}),
               _record("int8.onnx", 0.5, {"weights": "int8 per-tensor"})]
    paths = {"int8.onnx": folder / "pt.onnx", "int8.tflite": folder / "q.tflite"}
    cause = sibling_gaps(records, paths, tiny_data.x_test, tiny_data.y_test, 0.005)["int8.onnx"]["likely_cause"]
    assert cause.startswith("the two quantizers differ: int8.onnx: per-channel weights in 0 of 2")
    assert "int8.tflite: per-channel weights in" in cause and "on 50 samples" in cause
