"""The whole gate under load, as CI runs it: export a small CNN, write the baseline, export
the same model again while a CPU burner runs (and check under it): `check` exits 0; export
the same model with eight times the channels in its convolutions: `check` exits 3 and names
the size and the cost that grew (at twice the channels the int8 model's host latency grows
by less than the 10% tolerance, 3.13 -> 3.20 us on a 2-core EPYC: the invoke's fixed cost
dominates; at eight times, 3.1 -> 15.7 us). For host (latency re-measured A/B), rpi4 (emulated
instruction counts) and cortex-m4 (its emulated core's counts, arena and flash; the wide
model is left to benchmarks/check_noise.py there, an export on the emulated core costing
about 15 s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from quadrants import quadrant_cnn, quadrants

from edgeprune.check_cli import check
from edgeprune.pipeline import ExportOptions, run_export

pytestmark = pytest.mark.slow

RECIPE = 'quantize = ["int8"]\nformats = ["tflite"]\ntflite_sparse_encoding = "never"\n'
# the cost each target gates, besides the size: measured on the target, or exact counts
COST = {"host": "latency_ms", "rpi4": "instructions_per_invoke"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, keras):
    """A data file, a recipe file, and the model at 8 channels (trained) and at 64 (its
    figures only need to grow: left untrained), saved."""
    folder = tmp_path_factory.mktemp("load")
    (x_train, y_train), (x_test, y_test) = quadrants(256, 0), quadrants(24, 1)
    np.savez(folder / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (folder / "recipe.toml").write_text(RECIPE)
    models = {}
    for channels in (8, 64):
        model = quadrant_cnn(keras, channels, train=(x_train, y_train) if channels == 8 else None)
        models[channels] = folder / f"cnn{channels}.keras"
        model.save(models[channels])
    return folder, models


def export(folder: Path, model: Path, target: str, out: str) -> Path:
    run_export(ExportOptions(target=target, out_dir=folder / out, model=str(model),
                             data=folder / "data.npz", recipe=folder / "recipe.toml",
                             finetune_epochs=0))
    return folder / out / target / "report.json"


def gate(*args) -> tuple[int, str]:
    result = CliRunner().invoke(check, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize("target", ["host", pytest.param("rpi4", marks=pytest.mark.qemu),
                                    "cortex-m4"])
def test_check_passes_under_load_and_catches_eight_times_the_channels(inputs, target):
    folder, models = inputs
    baseline = folder / "baselines" / f"{target}.json"
    code, out = gate(export(folder, models[8], target, f"{target}-base"), "--baseline", baseline,
                     "--update-baseline")
    assert code == 0, out

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = export(folder, models[8], target, f"{target}-loaded")
        code, out = gate(loaded, "--baseline", baseline, "--all")
    finally:
        burner.kill()
        burner.wait()
    assert code == 0, out
    assert "PASS: 0 regression(s), 0 failed budget(s)" in out
    if target == "host":
        assert "host/int8.tflite latency_ms: A/B in this run on local" in out
    else:
        assert "host_latency_ms" in out and "latency_ms: A/B" not in out
    if target not in COST:
        return

    code, out = gate(export(folder, models[64], target, f"{target}-wide"), "--baseline", baseline)
    assert code == 3, out
    regressed = {line.split()[2] for line in out.splitlines() if line.endswith("REGRESSED")}
    assert {"size_bytes", COST[target]} <= regressed, out
    assert f"{target}/int8.tflite grew: tensor cnn/conv2/Conv2D" in out
