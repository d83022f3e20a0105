"""Sparsity read back from the weights inside exported .tflite and .onnx files."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import InputError
from edgeprune.measure.sparsity import (compare, keras_layer_sparsity, onnx_sparsity,
                                        tflite_sparsity)

LAYERS = ["conv", "dw", "fc", "logits"]


@pytest.fixture(scope="module")
def sparse_model(keras):
    """A model whose kernels are 55-70% exact zeros (random masks), not trained."""
    from edgeprune import keras_env

    keras_env.set_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="fc"),
        keras.layers.Dense(10, name="logits"),
    ])
    rng = np.random.default_rng(0)
    model.set_weights([w * (rng.random(w.shape) > rng.uniform(0.55, 0.7)) if w.ndim > 1 else w
                       for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def calibration():
    return np.random.default_rng(1).random((32, 8, 8, 1)).astype(np.float32)


def _int8_zeros(kernel: np.ndarray, channel_axis: int) -> float:
    """Fraction of weights that symmetric per-channel int8 (scale = max|w| / 127) makes 0."""
    axes = tuple(a for a in range(kernel.ndim) if a != channel_axis % kernel.ndim)
    scale = np.abs(kernel).max(axis=axes, keepdims=True) / 127.0
    return float(np.mean(np.round(kernel / np.where(scale == 0, 1, scale)) == 0))


def test_tflite_sparsity_equals_keras_sparsity_when_float32(sparse_model, tmp_path):
    from edgeprune.export.tflite import to_tflite

    path = tmp_path / "float32.tflite"
    path.write_bytes(to_tflite(sparse_model, "float32"))
    keras_side = keras_layer_sparsity(sparse_model)
    assert list(keras_side) == LAYERS and min(keras_side.values()) > 0.4
    read = tflite_sparsity(path)
    assert read == pytest.approx(keras_side, abs=1e-9)


def test_tflite_sparsity_counts_values_that_int8_quantization_zeroes(sparse_model, calibration,
                                                                     tmp_path):
    from edgeprune.export.tflite import to_tflite

    path = tmp_path / "int8.tflite"
    path.write_bytes(to_tflite(sparse_model, "int8", representative=calibration))
    read = tflite_sparsity(path, LAYERS)
    for name in LAYERS:
        kernel = sparse_model.get_layer(name).get_weights()[0]
        axis = -2 if name == "dw" else -1          # depthwise kernels: [h, w, in, multiplier]
        expected = _int8_zeros(kernel, axis)
        assert read[name] == pytest.approx(expected, abs=1.0 / kernel.size), name
        assert read[name] >= keras_layer_sparsity(sparse_model)[name]


def test_tflite_sparsity_reads_the_sparse_encoding(sparse_model, tmp_path):
    from edgeprune.export.tflite import sparsify, to_tflite

    path = tmp_path / "sparse.tflite"
    path.write_bytes(sparsify(to_tflite(sparse_model, "float32")))
    assert tflite_sparsity(path, LAYERS) == pytest.approx(keras_layer_sparsity(sparse_model),
                                                          abs=1e-9)


def test_onnx_sparsity_matches_keras_for_float_and_int8_qdq(sparse_model, calibration, tmp_path):
    from edgeprune.export.onnx import to_onnx_float, to_onnx_int8

    float_path, int8_path = tmp_path / "float32.onnx", tmp_path / "int8.onnx"
    to_onnx_float(sparse_model, (8, 8, 1), float_path)
    to_onnx_int8(float_path, int8_path, calibration)
    keras_side = keras_layer_sparsity(sparse_model)
    assert onnx_sparsity(float_path, LAYERS) == pytest.approx(keras_side, abs=1e-9)
    read = onnx_sparsity(int8_path, LAYERS)
    assert set(read) == set(LAYERS)
    for name in LAYERS:
        assert keras_side[name] <= read[name] <= keras_side[name] + 0.03, name
    rows = compare(keras_side, onnx=read)
    assert rows["fc"] == {"keras": keras_side["fc"], "onnx": read["fc"]}


def test_tflite_sparsity_raises_input_error_when_not_a_tflite_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(InputError, match="TFL3"):
        tflite_sparsity(path)


def test_encoding_sizes_reports_a_smaller_sparse_encoding_for_a_sparse_float_model(sparse_model):
    from edgeprune.measure.sparsity import encoding_sizes

    sizes = encoding_sizes(sparse_model, "float32")
    assert set(sizes) == {"size_bytes", "gzip_bytes", "sparse_size_bytes", "sparse_gzip_bytes"}
    assert sizes["sparse_size_bytes"] < 0.8 * sizes["size_bytes"]
    assert sizes["gzip_bytes"] < sizes["size_bytes"]
