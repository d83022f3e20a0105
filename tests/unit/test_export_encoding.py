"""choose_encoding(): the sparse encoding is the dense file re-encoded, kept only when it
loads, runs and gives the dense file's outputs; the runtime probe behind it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import ConfigError, UnsupportedError
from edgeprune.export.encoding import choose_encoding
from edgeprune.export.tflite import sparsify, to_tflite
from edgeprune.measure.sparsity import tflite_sparsity
from edgeprune.recipe import Recipe
from edgeprune.runtimes import runner
from edgeprune.runtimes.probe import name_op, probe_tflite
from edgeprune.targets import LocalDevice as LocalSpec, RuntimeSpec, TargetProfile

LAYERS = ["conv", "fc", "logits"]


@pytest.fixture(scope="module")
def pruned(keras):
    """conv -> fc (Dense 64) -> logits, 80% of every kernel set to zero (untrained)."""
    from conftest import build_conv_dense

    model = build_conv_dense(keras)
    weights = model.get_weights()
    for i in (0, 2, 4):
        kernel = weights[i]
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0.0
    model.set_weights(weights)
    return model


@pytest.fixture(scope="module")
def dense_files(pruned, tiny_data):
    rep = tiny_data.x_train[:50]
    return {p: to_tflite(pruned, p, representative=rep) for p in ("float32", "int8")}


def _profile(mode="auto", delegate="xnnpack"):
    return TargetProfile(name="t", description="test", arch="x86_64", cpu="x",
                         runtime=RuntimeSpec(engine="litert", delegate=delegate),
                         device=LocalSpec(kind="local"), recipe=Recipe(tflite_sparse_encoding=mode))


def test_sparsify_reencodes_the_dense_file_with_the_same_zeros(dense_files, tmp_path):
    for precision, dense in dense_files.items():
        (tmp_path / "d.tflite").write_bytes(dense)
        (tmp_path / "s.tflite").write_bytes(sparsify(dense))
        assert (tmp_path / "s.tflite").stat().st_size < len(dense)
        assert tflite_sparsity(tmp_path / "s.tflite", LAYERS) == tflite_sparsity(tmp_path / "d.tflite", LAYERS)


def test_choose_encoding_keeps_sparse_float32_when_bit_exact_with_the_dense_file(dense_files, tiny_data,
                                                                                 tmp_path):
    choice = choose_encoding(dense_files["float32"], "float32", _profile(), tiny_data.x_test, tmp_path)
    assert choice.encoding == "sparse" and choice.data == sparsify(dense_files["float32"])
    assert choice.check["passed"] and choice.check["max_abs_diff"] == 0.0
    assert choice.check["samples"] == len(tiny_data.x_test)
    assert "bit-exact on 150 test samples" in choice.reason
    assert choice.runs["sparse"]["ops_delegated"] == choice.runs["sparse"]["ops_total"] > 0
    assert list(tmp_path.iterdir()) == []            # the probe files are gone


def test_choose_encoding_keeps_sparse_int8_bit_exact_on_builtin_kernels(dense_files, tiny_data, tmp_path):
    choice = choose_encoding(dense_files["int8"], "int8", _profile(delegate="none"), tiny_data.x_test,
                             tmp_path)
    assert choice.encoding == "sparse" and choice.check["max_abs_diff"] == 0.0
    assert choice.check["tolerance"] == "bit-exact"
    assert "FULLY_CONNECTED (fc)" in choice.runs["sparse"]["sparse_weight_ops"]


def test_choose_encoding_keeps_dense_naming_the_op_when_xnnpack_rejects_sparse_int8(dense_files, tiny_data,
                                                                                  tmp_path):
    choice = choose_encoding(dense_files["int8"], "int8", _profile(), tiny_data.x_test, tmp_path)
    assert choice.encoding == "dense" and choice.data == dense_files["int8"]
    assert "fails with delegate 'xnnpack' at FULLY_CONNECTED (op" in choice.reason
    assert choice.runs["sparse"]["loaded"] is False and choice.runs["dense"]["ran"] is True


def test_choose_encoding_raises_naming_the_op_when_always_and_the_sparse_file_fails(dense_files, tiny_data,
                                                                                  tmp_path):
    with pytest.raises(ConfigError, match=r"at FULLY_CONNECTED \(op \d+, layer fc"):
        choose_encoding(dense_files["int8"], "int8", _profile("always"), tiny_data.x_test, tmp_path)


def test_choose_encoding_keeps_dense_when_the_sparse_file_invoke_fails(dense_files, tiny_data, tmp_path,
                                                                      monkeypatch):
    # A runtime error at invoke time (an attention model's sparse file under XNNPACK), not at load.
    original = runner.LiteRTModel.invoke

    def invoke(self):
        if any(op["op_name"] == "DENSIFY" for op in self.interp._get_ops_details()):
            raise RuntimeError("failed to delegate FULLY_CONNECTED node #3")
        return original(self)

    monkeypatch.setattr(runner.LiteRTModel, "invoke", invoke)
    choice = choose_encoding(dense_files["float32"], "float32", _profile(), tiny_data.x_test, tmp_path)
    assert choice.encoding == "dense"
    assert "RuntimeError: failed to delegate FULLY_CONNECTED node #3" in choice.reason


def test_choose_encoding_keeps_dense_when_the_sparse_outputs_differ(dense_files, pruned, tiny_data,
                                                                   tmp_path, monkeypatch):
    # A sparse file that is not the dense file's model (one layer hollowed, as a second
    # converter run once did): never chosen.
    hollow = [w.copy() for w in pruned.get_weights()]
    hollow[2][np.abs(hollow[2]) < np.quantile(np.abs(hollow[2]), 0.996)] = 0.0
    clone = pruned.__class__.from_config(pruned.get_config())
    clone.set_weights(hollow)
    other = sparsify(to_tflite(clone, "int8", representative=tiny_data.x_train[:50]))
    monkeypatch.setattr("edgeprune.export.tflite.sparsify", lambda data: other)
    choice = choose_encoding(dense_files["int8"], "int8", _profile(delegate="none"), tiny_data.x_test,
                             tmp_path)
    assert choice.encoding == "dense" and not choice.check["passed"]
    assert "is not the dense file's model" in choice.reason and "expected bit-exact" in choice.reason
    assert "zero weights read back: fc 99.6% in the sparse encoding vs 80.0% dense" in choice.reason


def test_probe_counts_delegated_ops_and_names_the_failing_op(dense_files, tiny_data, tmp_path):
    path = tmp_path / "s.tflite"
    path.write_bytes(sparsify(dense_files["int8"]))
    failed = probe_tflite(path, threads=1, delegate="xnnpack", inputs=tiny_data.x_test[:4])
    assert not failed.loaded and failed.failing_op.startswith("FULLY_CONNECTED (op")
    assert "Node number" in failed.error and "could not load" not in failed.error
    plain = probe_tflite(path, threads=1, delegate="none", inputs=tiny_data.x_test[:4], timed=5)
    assert plain.ran and plain.outputs.shape == (4, 10) and plain.latency_ms > 0
    assert sum(op["delegated"] for op in plain.ops) == 0


def test_name_op_reads_tflite_and_onnx_messages(dense_files, tmp_path):
    path = tmp_path / "d.tflite"
    path.write_bytes(dense_files["int8"])
    assert name_op("Node number 1 (CONV_2D) failed to invoke.", path).startswith("CONV_2D (op 1")
    assert name_op("nothing here", path) is None
    assert name_op("[ONNXRuntimeError] : 6 : Non-zero status code while running Conv node. Name:'x' "
                   "Node (model/conv/Conv2D) Op (Conv) failed", tmp_path / "m.onnx") == "model/conv/Conv2D"


def test_local_device_names_the_op_when_the_runtime_fails_at_invoke(dense_files, tiny_data, tmp_path,
                                                                   monkeypatch):
    from edgeprune.devices import RunRequest
    from edgeprune.devices.local import LocalDevice

    path = tmp_path / "m.tflite"
    path.write_bytes(dense_files["int8"])

    def fail(*args, **kwargs):
        raise RuntimeError("tensorflow/lite/kernels/fully_connected.cc Node number 3 (FULLY_CONNECTED) "
                           "failed to invoke.")

    monkeypatch.setattr(runner, "run_job", fail)
    with pytest.raises(UnsupportedError, match=r"fails on this model at FULLY_CONNECTED \(op 3") as err:
        LocalDevice().run(path, tiny_data.x_test[:2], RunRequest(engine="litert"))
    assert err.value.exit_code == 2


def test_choose_encoding_refuses_tensorflows_sparse_int8_that_loses_weights(keras, tmp_path):
    """TensorFlow's own re-encoding keeps 2% of an int8 layer with 8 inputs (an autoencoder's
    decoder after its 8-unit code): the check reads it back and names the layer."""
    from edgeprune import keras_env

    keras_env.set_seed(0)
    layers = keras.layers
    model = keras.Sequential([keras.Input((64,)), layers.Dense(32, activation="relu", name="enc"),
                              layers.Dense(8, activation="relu", name="code"),
                              layers.Dense(32, activation="relu", name="dec"), layers.Dense(64, name="out")])
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.75)] = 0.0
        layer.set_weights([kernel, bias])
    x = np.random.default_rng(0).random((40, 64)).astype(np.float32)
    dense = to_tflite(model, "int8", representative=x)
    with pytest.raises(ConfigError, match=r"not the dense file's model .*zero weights read back: "
                                          r"dec 98\.0% in the sparse encoding vs 75\.0% dense"):
        choose_encoding(dense, "int8", _profile("always", delegate="none"), x, tmp_path)
