"""Non-finite weights and values are exit 2 naming the layer, never an exporter's crash."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import edgeprune.keras_env as keras_env
from edgeprune.cli import cli
from edgeprune.compress import training
from edgeprune.errors import ConfigError, InputError
from edgeprune.finite import check_numbers
from edgeprune.recipe import Recipe
from edgeprune.types import Dataset

RECIPE = 'quantize = ["int8"]\nformats = ["tflite", "onnx"]\ndeploy = "int8.tflite"\nfinetune = { epochs = 1 }\n'


def _dense(keras, seed=0):
    keras_env.set_seed(seed)
    return keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                             keras.layers.Dense(3, name="head")])


def _data(scale=1.0) -> Dataset:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 16)) * scale).astype(np.float32)
    y = rng.integers(0, 3, 40)
    return Dataset(x[:30], y[:30], x[30:34], y[30:34], x[34:], y[34:], 3, "rng", "0")


def _export(tmp_path, model, x_scale=1.0, recipe=RECIPE, nan_weight=False):
    if nan_weight:
        kernel, bias = model.layers[0].get_weights()
        kernel[0, 0] = np.nan
        model.layers[0].set_weights([kernel, bias])
    model.save(tmp_path / "m.h5")
    data = _data(x_scale)
    np.savez(tmp_path / "d.npz", x_train=np.concatenate([data.x_train, data.x_val]),
             y_train=np.concatenate([data.y_train, data.y_val]), x_test=data.x_test, y_test=data.y_test)
    (tmp_path / "r.toml").write_text(recipe)
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "m.h5"), "--data", str(tmp_path / "d.npz"),
                                      "--recipe", str(tmp_path / "r.toml"), "--target", "host",
                                      "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "host").exists()
    return result


def test_export_exits_2_naming_the_weight_when_h5_holds_nan(tmp_path, keras):
    result = _export(tmp_path, _dense(keras), nan_weight=True)
    assert result.exit_code == 2, result.output
    assert "hidden/kernel: 1 of 128 values are NaN or infinite" in result.output


def test_export_exits_2_when_learning_rate_is_infinite(tmp_path, keras):
    result = _export(tmp_path, _dense(keras), recipe=RECIPE.replace("epochs = 1", "epochs = 1, learning_rate = inf"))
    assert result.exit_code == 2, result.output
    assert "finetune.learning_rate" in result.output and "finite" in result.output


def test_export_exits_2_naming_the_layer_when_inputs_overflow_float32(tmp_path, keras):
    result = _export(tmp_path, _dense(keras), x_scale=3e38)
    assert result.exit_code == 2, result.output
    assert "layer 'hidden'" in result.output and "scale the input data" in result.output


def test_fit_raises_config_error_naming_phase_when_training_diverges(keras):
    model = _dense(keras)
    with pytest.raises(ConfigError) as err:
        training.fit(model, _data(), epochs=2, batch_size=8, learning_rate=3e38, phase="prune", history={})
    assert "'prune'" in str(err.value) and "finetune.learning_rate" in str(err.value)


def test_check_numbers_refuses_float16_export_of_weights_beyond_its_range(keras):
    model = _dense(keras)
    kernel, bias = model.layers[1].get_weights()
    kernel[0, 0] = 1e5
    model.layers[1].set_weights([kernel, bias])
    check_numbers(model, _data(), Recipe(quantize=("int8",)), where="m")  # no float16: fine
    with pytest.raises(ConfigError, match="head/kernel reaches 1e"):
        check_numbers(model, _data(), Recipe(quantize=("float16", "int8")), where="m")


def test_check_numbers_refuses_range_that_overflows_float32(keras):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="mix")])
    model.layers[0].set_weights([np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.zeros(2, np.float32)])
    x = np.array([[3e38, -3e38]] * 6, np.float32)
    data = Dataset(x, np.zeros(6, int), x, np.zeros(6, int), x, np.zeros(6, int), 2, "s", "h")
    with pytest.raises(InputError, match="range overflows float32"):
        check_numbers(model, data, Recipe(quantize=("int8",)), where="m")
