"""The runner returns every output of a multi-output model, flattened with a layout, and
the host splits them back by name, whatever order the file keeps them in."""

import numpy as np
import pytest

import edgeprune.runtimes.runner as runner
from edgeprune.errors import InputError
from edgeprune.export.onnx import to_onnx_float
from edgeprune.export.tflite import to_tflite
from edgeprune.runtimes.outputs import split_outputs


@pytest.fixture(scope="module")
def two_heads(keras):
    inp = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    # Named so that TFLite's signature order (alphabetical) differs from the model's.
    return keras.Model(inp, [keras.layers.Dense(3, activation="softmax", name="zlabel")(hidden),
                             keras.layers.Dense(2, name="abox")(hidden)])


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_runner_outputs_split_back_to_the_keras_outputs(tmp_path, two_heads, fmt):
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    path = tmp_path / f"m.{fmt}"
    if fmt == "tflite":
        path.write_bytes(to_tflite(two_heads, "float32"))
    else:
        to_onnx_float(two_heads, (6,), path)
    engine = "litert" if fmt == "tflite" else "onnxruntime"
    result, flat = runner.run_job({"engine": engine, "warmup": 0, "repeats": 1}, x, str(path))
    assert flat.shape == (5, 5) and {o["name"] for o in result["outputs_layout"]} == {"zlabel", "abox"}
    label, box = split_outputs(flat, result["outputs_layout"], ["zlabel", "abox"])
    want_label, want_box = two_heads.predict(x, verbose=0)
    np.testing.assert_allclose(label, want_label, atol=1e-5)
    np.testing.assert_allclose(box, want_box, atol=1e-5)


def test_split_outputs_refuses_a_file_with_other_outputs():
    layout = [{"name": "a", "shape": [2]}, {"name": "b", "shape": [1]}]
    with pytest.raises(InputError, match="3 \\(x, y, z\\)"):
        split_outputs(np.zeros((4, 3), np.float32), layout, ["x", "y", "z"])
