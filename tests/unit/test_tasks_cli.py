"""An ambiguous task stops the export with exit 2, names the fix, and writes nothing."""

import numpy as np
from click.testing import CliRunner

from edgeprune.cli import cli


def test_export_exits_2_when_float_targets_could_be_regression_or_classes(tmp_path, keras):
    inp = keras.Input((16,))
    keras.Model(inp, keras.layers.Dense(16, name="decoder")(inp)).save(tmp_path / "ae.keras")  # not compiled
    x = np.random.default_rng(0).random((20, 16)).astype(np.float32)
    np.savez(tmp_path / "ae.npz", x_train=x, y_train=x, x_test=x[:5], y_test=x[:5])
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "ae.keras"), "--target", "host", "--data",
                                      str(tmp_path / "ae.npz"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "'decoder'" in result.output and 'task = { kind = "regression" }' in result.output
    assert not (tmp_path / "out").exists()
