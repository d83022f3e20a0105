import os
import subprocess
import sys

import pytest

from edgeprune.errors import InputError
from edgeprune.source import load_model_file


def test_load_model_file_reads_tf_keras_formats(tmp_path, make_tiny_cnn):
    model = make_tiny_cnn()
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "saved", save_format="tf")
    for path in (tmp_path / "m.keras", tmp_path / "m.h5", tmp_path / "saved"):
        source = load_model_file(path)
        assert source.input_shape == (8, 8, 1) and source.num_classes == 10
        assert len(source.sha256) == 64


def test_load_model_file_refuses_keras3_file(tmp_path):
    path = tmp_path / "k3.keras"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    code = ("import keras; m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]); "
            f"m.save({str(path)!r}); print(keras.__version__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("3")
    with pytest.raises(InputError) as err:
        load_model_file(path)
    assert "Keras 3" in str(err.value) and "tf_keras" in str(err.value)


def test_load_model_file_refuses_truncated_file(tmp_path, make_tiny_cnn):
    path = tmp_path / "m.keras"
    make_tiny_cnn().save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_model_file(path)


def test_load_model_file_refuses_truncated_h5(tmp_path, make_tiny_cnn):
    path = tmp_path / "m.h5"
    make_tiny_cnn().save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_model_file(path)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_model_file_refuses_lambda_layer(tmp_path, keras, suffix):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Lambda(lambda t: t * 2.0, name="double"),
                              keras.layers.Dense(10)])
    path = tmp_path / f"lambda{suffix}"
    model.save(path)
    with pytest.raises(InputError) as err:
        load_model_file(path)
    assert "'double'" in str(err.value) and "Lambda" in str(err.value)


def test_load_model_file_refuses_unknown_suffix(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="unknown model format"):
        load_model_file(path)


def test_load_model_file_refuses_plain_savedmodel(tmp_path):
    import edgeprune.keras_env as keras_env

    tf = keras_env.tf()
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "plain"))
    with pytest.raises(InputError, match="no Keras metadata"):
        load_model_file(tmp_path / "plain")
