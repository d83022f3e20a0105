"""Model files that would run code when loaded are refused before anything is deserialised.

Each test plants a payload that writes a marker file when it runs, and asserts
that the marker is never written.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import edgeprune.keras_env as keras_env
from edgeprune.cli import cli
from edgeprune.errors import InputError
from edgeprune.scan import scan_config
from edgeprune.source import load_model_file


def _writer(marker):
    path = str(marker)

    def payload(t):
        with open(path, "w") as fh:
            fh.write("ran")
        return t

    return payload


def _lambda_model(keras, marker):
    return keras.Sequential([keras.Input((4,)), keras.layers.Lambda(_writer(marker), name="payload"),
                             keras.layers.Dense(2)])


def _refused(path, marker, *words):
    with pytest.raises(InputError) as err:
        load_model_file(path)
    assert not marker.exists(), "the payload ran"
    for word in words:
        assert word in str(err.value)
    return err.value


@pytest.mark.parametrize("fmt", ["keras", "h5", "tf"])
def test_load_model_file_refuses_lambda_before_running_it(tmp_path, keras, fmt):
    marker = tmp_path / "ran"
    path = tmp_path / ("lambda_sm" if fmt == "tf" else f"lambda.{fmt}")
    _lambda_model(keras, marker).save(path, **({"save_format": "tf"} if fmt == "tf" else {}))
    marker.unlink()  # building the model ran it here once; loading must not
    _refused(path, marker, "'payload'", "Lambda")


def test_export_exits_2_when_savedmodel_has_lambda_and_payload_never_runs(tmp_path, keras):
    marker = tmp_path / "ran"
    _lambda_model(keras, marker).save(tmp_path / "lambda_sm", save_format="tf")
    marker.unlink()
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 4)), y_train=np.zeros(10, int),
             x_test=np.zeros((4, 4)), y_test=np.zeros(4, int))
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "lambda_sm"), "--data", str(tmp_path / "d.npz"),
                                      "--target", "host", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Lambda" in result.output
    assert not marker.exists() and not (tmp_path / "out" / "host").exists()


def test_load_model_file_refuses_module_to_import_before_importing_it(tmp_path, keras, monkeypatch):
    marker = tmp_path / "ran"
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "edgeprune_planted_payload.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass Model: pass\n")
    monkeypatch.syspath_prepend(str(plant))
    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    config.update(module="edgeprune_planted_payload", class_name="Model")
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _refused(path, marker, "edgeprune_planted_payload", "import")


def _writing_layer(keras, marker, class_name):
    tf = keras_env.tf()
    path = str(marker)

    def call(self, x):
        tf.io.write_file(path, "ran")
        return x

    return type(class_name, (keras.layers.Layer,), {"call": call})


def test_load_model_file_refuses_custom_savedmodel_layer_whose_graph_writes_files(tmp_path, keras):
    marker = tmp_path / "ran"
    layer = _writing_layer(keras, marker, "Writer")
    keras.Sequential([keras.Input((4,)), layer(name="writer"), keras.layers.Dense(2)]).save(
        tmp_path / "sm", save_format="tf")
    _refused(tmp_path / "sm", marker, "'Writer'", "not a built-in")


def test_load_model_file_refuses_graph_file_op_behind_builtin_class_name(tmp_path, keras):
    """A custom class named like a built-in fails to revive from its config, so tf_keras would
    run its traced graph: the WriteFile op in that graph is refused."""
    marker = tmp_path / "ran"
    spoof = _writing_layer(keras, marker, "Dense")
    keras.Sequential([keras.Input((4,)), spoof(name="spoof"), keras.layers.Dense(2)]).save(
        tmp_path / "sm", save_format="tf")
    _refused(tmp_path / "sm", marker, "WriteFile")


def test_load_model_file_refuses_python_op_in_savedmodel_graph(tmp_path, keras):
    tf = keras_env.tf()

    def call(self, x):
        y = tf.numpy_function(lambda a: a, [x], tf.float32, stateful=False)
        y.set_shape(x.shape)
        return y

    layer = type("Dense", (keras.layers.Layer,), {"call": call})
    keras.Sequential([keras.Input((4,)), layer(name="py"), keras.layers.Dense(2)]).save(
        tmp_path / "sm", save_format="tf")
    _refused(tmp_path / "sm", tmp_path / "never", "PyFunc")


def test_load_model_file_accepts_builtin_layers_in_every_format(tmp_path, keras):
    tf = keras_env.tf()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = tf.nn.relu(x)                      # a TFOpLambda layer
    x = tf.reshape(x, (-1, 256))[:, :64]   # TFOpLambda and SlicingOpLambda
    x = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, x)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    for path in (tmp_path / "m.keras", tmp_path / "m.h5", tmp_path / "sm"):
        model.save(path, **({"save_format": "tf"} if path.name == "sm" else {}))
        assert load_model_file(path).num_classes == 10


@pytest.mark.parametrize("function", ["io.write_file", "print", "py_function", "load_op_library",
                                      "compat.v1.Print", "io.gfile.remove"])
def test_scan_config_refuses_tf_op_layer_calling_io_or_python(function):
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "TFOpLambda", "config": {"name": "op", "function": function}}]}}
    with pytest.raises(InputError, match=function.replace(".", r"\.")):
        scan_config(config, "m.h5")


def test_scan_config_refuses_function_from_foreign_module():
    config = {"class_name": "Dense", "config": {"name": "d", "activation": {
        "module": "os", "class_name": "function", "config": "system", "registered_name": "system"}}}
    with pytest.raises(InputError, match="'os'"):
        scan_config(config, "m.h5")


def test_load_model_file_refuses_nan_weights(tmp_path, keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")])
    kernel, bias = model.get_weights()
    kernel[0, 0] = np.nan
    model.set_weights([kernel, bias])
    model.save(tmp_path / "nan.h5")
    with pytest.raises(InputError, match="head/kernel: 1 of 8 values are NaN"):
        load_model_file(tmp_path / "nan.h5")


def test_load_model_file_refuses_h5_with_invalid_config_json(tmp_path, keras):
    import h5py

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as fh:
        fh.attrs["model_config"] = "{not json"
    with pytest.raises(InputError, match="not valid JSON"):
        load_model_file(tmp_path / "m.h5")


def test_load_model_file_refuses_corrupt_savedmodel_metadata(tmp_path, keras):
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "sm", save_format="tf")
    (tmp_path / "sm" / "keras_metadata.pb").write_bytes(b"\xff\xff\xff garbage")
    shutil.rmtree(tmp_path / "sm" / "variables")
    with pytest.raises(InputError, match="keras_metadata.pb"):
        load_model_file(tmp_path / "sm")
