"""Cross-checks: every artifact against its parent and across runtimes, within stated tolerances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeprune.devices.base import RunResult
from edgeprune.integrity import (BIT_EXACT, DEVICE, PARENT, compare, cross_check, device_check,
                                 integrity_verdicts, output_step)
from edgeprune.types import Artifact

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(40, 10)).astype(np.float32)


def test_compare_bit_exact_fails_on_the_smallest_difference():
    assert compare(LOGITS.copy(), LOGITS, BIT_EXACT)["passed"]
    nudged = LOGITS.copy()
    nudged[3, 4] = np.nextafter(nudged[3, 4], np.float32(10))
    result = compare(nudged, LOGITS, BIT_EXACT)
    assert not result["passed"] and "expected bit-exact" in result["reason"]


def test_compare_int8_parent_tolerance_passes_quantization_noise_and_fails_a_wrecked_file():
    noisy = LOGITS + RNG.normal(scale=0.05, size=LOGITS.shape).astype(np.float32)
    assert compare(noisy, LOGITS, PARENT["int8"])["passed"]
    wrecked = LOGITS * 0.2 + RNG.normal(size=LOGITS.shape).astype(np.float32)
    result = compare(wrecked, LOGITS, PARENT["int8"])
    assert not result["passed"] and "nrmse" in result["reason"] and "top-1" in result["reason"]


def test_compare_steps_allows_one_output_step_and_not_two():
    step = 0.0625
    one, two = LOGITS.copy(), LOGITS.copy()
    one[0, 0] += step
    two[0, 0] += 2 * step
    assert compare(one, LOGITS, DEVICE["int8"], step=step)["passed"]
    result = compare(two, LOGITS, DEVICE["int8"], step=step)
    assert not result["passed"] and "2.0 output steps" in result["reason"]


def test_compare_fails_on_a_different_output_shape():
    result = compare(LOGITS[:, :5], LOGITS, PARENT["float32"])
    assert not result["passed"] and "output shape" in result["reason"]


@pytest.mark.parametrize("tol", [PARENT["float16"], PARENT["int8"], BIT_EXACT], ids=["float16", "int8", "exact"])
def test_compare_fails_when_an_output_is_nan_or_infinite_under_every_tolerance(tol):
    broken = LOGITS.copy()
    broken[5, 2], broken[7, 1] = np.nan, np.inf
    result = compare(broken, LOGITS, tol)
    assert not result["passed"] and "2 of the candidate's output values are NaN or infinite" in result["reason"]
    assert result["max_abs_diff"] is None and result["nonfinite_outputs"] == {"candidate": 2, "reference": 0}
    assert not compare(LOGITS, broken, tol)["passed"]


@pytest.fixture(scope="module")
def int8_files(tiny_cnn, tiny_data, tmp_path_factory):
    from edgeprune.export.tflite import to_tflite

    folder = tmp_path_factory.mktemp("int8")
    rep = tiny_data.x_train[:50]
    for name, io in (("float_io", False), ("int8_io", True)):
        (folder / f"{name}.tflite").write_bytes(to_tflite(tiny_cnn, "int8", representative=rep, int8_io=io))
    return folder


def test_output_step_reads_the_output_scale_with_int8_or_float_io(int8_files):
    from ai_edge_litert.interpreter import Interpreter

    with_int8 = output_step(int8_files / "int8_io.tflite")
    expected = Interpreter(model_path=str(int8_files / "int8_io.tflite")).get_output_details()[0]["quantization"][0]
    assert with_int8 == pytest.approx(expected)
    assert output_step(int8_files / "float_io.tflite") == pytest.approx(expected)   # the dequantize's input


def _art(path: Path, name="int8.tflite", parent="compressed.keras", settings=None) -> Artifact:
    return Artifact(name=name, path=path, format="tflite", precision=name.split(".")[0], encoding="dense",
                    sha256="x", parent=parent, settings=settings or {})


def test_device_check_passes_one_output_step_and_flags_two(int8_files):
    art = _art(int8_files / "float_io.tflite")
    step = output_step(art.path)
    host = RunResult(outputs=LOGITS, latency_ms=[], runtime="r", where="local x86_64")
    off = LOGITS.copy()
    off[1, 2] += step
    ok = device_check(RunResult(outputs=off, latency_ms=[], runtime="r", where="qemu"), host, art, "litert")
    assert ok["passed"] and not ok["bit_exact"] and ok["expected"].startswith("within one output")
    off[1, 2] += step
    bad = device_check(RunResult(outputs=off, latency_ms=[], runtime="r", where="qemu"), host, art, "litert")
    assert not bad["passed"] and "output steps" in bad["reason"]


def test_cross_check_moves_a_file_that_disagrees_with_its_parent_to_rejected(tmp_path):
    good, bad = tmp_path / "model_float32.tflite", tmp_path / "model_int8.tflite"
    good.write_bytes(b"a")
    bad.write_bytes(b"b")
    arts = [_art(good, "float32.tflite"), _art(bad, "int8.tflite")]
    outputs = {"float32.tflite": LOGITS.copy(), "int8.tflite": -LOGITS}
    measurements = {"float32.tflite": {}, "int8.tflite": {}}
    logged = []
    kept = cross_check(arts, measurements, outputs, {"compressed.keras": LOGITS}, tmp_path, logged.append)
    assert kept[0].path == good and good.is_file()
    assert kept[1].path == tmp_path / "rejected" / "model_int8.tflite" and kept[1].path.is_file()
    assert not bad.exists() and "against compressed.keras" in kept[1].settings["rejected"]
    fig = measurements["int8.tflite"]["integrity"]
    assert fig["value"] == 1 and not fig["passed"] and logged and "rejected model_int8.tflite" in logged[0]
    assert measurements["float32.tflite"]["integrity"]["passed"]
    verdicts = integrity_verdicts("int8.tflite", measurements["int8.tflite"])
    assert verdicts[0].verdict == "fail" and verdicts[0].note.startswith("not deployed: against compressed.keras")


def test_a_failed_sparse_encoding_check_rejects_the_sparse_file_but_not_the_dense_one_kept_instead(tmp_path):
    """A sparse re-encoding with NaN outputs (a 95%-sparse float16 file did this) leaves the
    dense file deployed: the check is about the sparse alternative, not about it."""
    failed = {"against": "dense encoding", **compare(np.full_like(LOGITS, np.nan), LOGITS, PARENT["float16"])}
    for encoding in ("dense", "sparse"):
        path = tmp_path / f"{encoding}.tflite"
        path.write_bytes(b"f")
        art = Artifact(name="float16.tflite", path=path, format="tflite", precision="float16",
                       encoding=encoding, sha256="x", parent="compressed.keras",
                       settings={"encoding_check": failed})
        measurements = {"float16.tflite": {}}
        (kept,) = cross_check([art], measurements, {"float16.tflite": LOGITS.copy()},
                              {"compressed.keras": LOGITS}, tmp_path, lambda msg: None)
        fig = measurements["float16.tflite"]["integrity"]
        assert fig["passed"] is (encoding == "dense"), encoding
        assert (kept.path.parent.name == "rejected") is (encoding == "sparse")


def test_cross_check_compares_int8_onnx_with_float32_onnx_and_qat_files_with_the_qat_model(tmp_path):
    for name in ("q.onnx", "q.tflite"):
        (tmp_path / name).write_bytes(b"x")
    onnx = Artifact(name="int8.onnx", path=tmp_path / "q.onnx", format="onnx", precision="int8",
                    encoding="dense", sha256="x", parent="float32.onnx")
    qat = _art(tmp_path / "q.tflite", settings={"quantization_aware": True})
    outputs = {"int8.onnx": LOGITS, "float32.onnx": LOGITS, "int8.tflite": LOGITS + 1e-3}
    measurements = {"int8.onnx": {}, "int8.tflite": {}}
    cross_check([onnx, qat], measurements, outputs, {"compressed.keras": -LOGITS, "qat": LOGITS},
                tmp_path, lambda m: None)
    assert measurements["int8.onnx"]["integrity"]["checks"][0]["against"] == "float32.onnx"
    check = measurements["int8.tflite"]["integrity"]["checks"][0]
    assert check["against"].startswith("the QAT model") and check["passed"]


def test_device_check_allows_builtin_kernels_their_drift_but_not_a_different_model(int8_files):
    art = _art(int8_files / "float_io.tflite")
    step = output_step(art.path)
    host = RunResult(outputs=LOGITS, latency_ms=[], runtime="r", where="local", extra={"delegate": "none"})
    drift = LOGITS.copy()
    drift[:, 0] += 3 * step                                      # a few steps on every sample
    ok = device_check(RunResult(outputs=drift, latency_ms=[], runtime="r", where="qemu"), host, art, "litert")
    assert ok["passed"] and ok["expected"].startswith("nrmse <= 0.1, top-1 >= 0.9") and ok["steps"] > 2.9
    other = RunResult(outputs=-LOGITS, latency_ms=[], runtime="r", where="qemu")
    assert not device_check(other, host, art, "tflm")["passed"]
