"""Bad input gets exit code 2 and a message naming what is wrong; no output directory appears."""

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.cli import cli


def _invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_targets_lists_host():
    result = _invoke("targets")
    assert result.exit_code == 0 and "host" in result.output


def test_targets_show_prints_profile():
    result = _invoke("targets", "show", "host")
    assert result.exit_code == 0 and '"engine": "litert"' in result.output


def test_export_exits_2_when_target_unknown(tmp_path):
    result = _invoke("export", "--target", "nope", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "no target named 'nope'" in result.output
    assert not (tmp_path / "out").exists()


def test_export_exits_2_when_model_file_missing(tmp_path):
    result = _invoke("export", str(tmp_path / "absent.keras"), "--target", "host", "--data",
                     str(tmp_path / "d.npz"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "absent.keras" in result.output


def test_export_exits_2_when_model_file_has_no_data(tmp_path, make_tiny_cnn):
    make_tiny_cnn().save(tmp_path / "m.keras")
    result = _invoke("export", str(tmp_path / "m.keras"), "--target", "host", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "--data" in result.output


def test_export_exits_2_when_data_shape_mismatches_model(tmp_path, make_tiny_cnn):
    make_tiny_cnn().save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 4)), y_train=np.zeros(10, int),
             x_test=np.zeros((4, 4)), y_test=np.zeros(4, int))
    result = _invoke("export", str(tmp_path / "m.keras"), "--target", "host", "--data",
                     str(tmp_path / "d.npz"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "x_train" in result.output and "(N, 8, 8, 1)" in result.output
    assert not (tmp_path / "out").exists()


def test_export_exits_2_when_model_has_lambda(tmp_path, keras):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Lambda(lambda t: t + 1.0, name="shift"), keras.layers.Dense(10)])
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 8, 8, 1)), y_train=np.zeros(10, int),
             x_test=np.zeros((4, 8, 8, 1)), y_test=np.zeros(4, int))
    result = _invoke("export", str(tmp_path / "m.keras"), "--target", "host", "--data",
                     str(tmp_path / "d.npz"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "'shift'" in result.output and "Lambda" in result.output


def test_export_exits_2_when_recipe_has_unknown_key(tmp_path):
    (tmp_path / "r.toml").write_text("prune = { sparsity = 0.5 }\n")
    result = _invoke("export", "--target", "host", "--recipe", str(tmp_path / "r.toml"),
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "prune.sparsity" in result.output and "r.toml" in result.output


def test_help_does_not_import_tensorflow():
    code = "import sys; from edgeprune.cli import cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ})
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("args", [["--help"], ["export", "--help"], ["bench", "--help"]])
def test_help_exits_0(args):
    assert _invoke(*args).exit_code == 0


@pytest.mark.parametrize("seed", ["99999999999", "-1"])
def test_export_exits_2_when_seed_outside_32_bits(tmp_path, seed):
    result = _invoke("export", "--target", "host", "--seed", seed, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "--seed" in result.output and "4294967295" in result.output
    assert not (tmp_path / "out").exists()


def test_export_exits_2_when_data_is_a_npy_named_npz(tmp_path, make_tiny_cnn):
    make_tiny_cnn().save(tmp_path / "m.keras")
    np.save(tmp_path / "d.npy", np.zeros((10, 8, 8, 1), np.float32))
    (tmp_path / "d.npy").rename(tmp_path / "d.npz")
    result = _invoke("export", str(tmp_path / "m.keras"), "--target", "host", "--data",
                     str(tmp_path / "d.npz"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "single .npy array" in result.output
    assert not (tmp_path / "out").exists()
