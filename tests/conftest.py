"""Shared fixtures: tiny models built in code, tiny data, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import edgeprune.keras_env as keras_env


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Reference models train into a cache private to the test session.

    EDGEPRUNE_TEST_CACHE names a cache to reuse across test sessions instead (development
    only: it skips rebuilding the emulator root and retraining; CI leaves it unset so the
    cold path is tested).
    """
    mp = pytest.MonkeyPatch()
    reuse = os.environ.get("EDGEPRUNE_TEST_CACHE")
    mp.setenv("EDGEPRUNE_CACHE", reuse or str(tmp_path_factory.mktemp("cache")))
    # The TFLite Micro sources for the microcontroller tests: tox sets this; a plain pytest
    # in a checkout with the shared mirror beside it finds it there.
    mirror = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "tflm-src.tar.xz"
    if "EDGEPRUNE_TFLM_SOURCES" not in os.environ and mirror.is_file():
        mp.setenv("EDGEPRUNE_TFLM_SOURCES", str(mirror))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def keras():
    return keras_env.keras()


@pytest.fixture(scope="session")
def tiny_data():
    """A learnable 10-class problem on 8x8x1 inputs: scikit-learn digits, 600 samples."""
    from sklearn.datasets import load_digits

    from edgeprune.data import array_digest
    from edgeprune.types import Dataset

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None][:600]
    y = d.target.astype(np.int64)[:600]
    return Dataset(x_train=x[:400], y_train=y[:400], x_val=x[400:450], y_val=y[400:450],
                   x_test=x[450:], y_test=y[450:], num_classes=10, source="digits[:600]",
                   sha256=array_digest(x, y))


def build_tiny_cnn(keras, seed: int = 0):
    keras_env.set_seed(seed)
    return keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, name="logits"),
    ])


def build_conv_dense(keras, hidden: tuple[int, ...] = (64,), seed: int = 0):
    """conv (8 filters, 3x3) -> flatten -> hidden Dense layers (``fc``, or ``fc1``, ``fc2``...)
    -> ``logits`` (10), untrained: the smallest model with a stem, a middle and a classifier."""
    keras_env.set_seed(seed)
    names = ["fc"] if len(hidden) == 1 else [f"fc{i}" for i in range(1, len(hidden) + 1)]
    return keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        *[keras.layers.Dense(units, activation="relu", name=name) for units, name in zip(hidden, names)],
        keras.layers.Dense(10, name="logits"),
    ])


@pytest.fixture(scope="session")
def make_tiny_cnn(keras):
    """A factory for untrained tiny CNNs: make_tiny_cnn(seed=0)."""
    return lambda seed=0: build_tiny_cnn(keras, seed)


@pytest.fixture(scope="session")
def tiny_cnn(keras, tiny_data):
    """A tiny CNN trained for two epochs (seconds)."""
    model = build_tiny_cnn(keras)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(tiny_data.x_train, tiny_data.y_train, epochs=3, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def tiny_int8_tflite(tmp_path_factory, tiny_cnn, tiny_data):
    """The trained tiny CNN as a full-int8 .tflite file (float input and output)."""
    from edgeprune.export.tflite import to_tflite

    path = tmp_path_factory.mktemp("tiny-int8") / "model_int8.tflite"
    path.write_bytes(to_tflite(tiny_cnn, "int8", representative=tiny_data.x_train[:50]))
    return path


def export_digits(out, *extra):
    """`edgeprune export` of the reference model (digits, few epochs) for host, as a user runs it
    (its host recipe prunes 95% of the weights: 24 fine-tuning epochs keep the accuracy within
    a few points of the 10-epoch baseline; the 30 + 48 epochs of the default, within one)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "edgeprune", "export", "--target", "host", "--out", str(out),
           "--train-epochs", "10", "--epochs", "24", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ})


@pytest.fixture(scope="session")
def digits_export(tmp_path_factory):
    """One host export of the reference model per session: (its OUT/host folder, the process);
    the export tests and the report.html and schema tests read the same files."""
    out = tmp_path_factory.mktemp("dist")
    proc = export_digits(out)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    return out / "host", proc


MINI_RECIPE = ('quantize = ["int8"]\nformats = ["tflite"]\nfinetune = { epochs = 0 }\n'
               'representative_samples = 8\ntflite_sparse_encoding = "never"\n')


@pytest.fixture
def mini_export(tmp_path, keras):
    """The smallest complete export's inputs (a 16 -> 3 Dense model as .h5, 24 samples, an int8
    TFLite-only recipe without fine-tuning): ``{"model", "data", "recipe", "out"}`` paths and
    ``"args"``, the ``export`` command line for them."""
    keras_env.set_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, name="head")])
    model.save(tmp_path / "m.h5")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((16, 16), dtype=np.float32), y_train=np.arange(16) % 3,
             x_test=rng.random((8, 16), dtype=np.float32), y_test=np.arange(8) % 3)
    (tmp_path / "r.toml").write_text(MINI_RECIPE)
    paths = {"model": tmp_path / "m.h5", "data": tmp_path / "d.npz", "recipe": tmp_path / "r.toml",
             "out": tmp_path / "out"}
    paths["args"] = ["export", str(paths["model"]), "--data", str(paths["data"]), "--recipe",
                     str(paths["recipe"]), "--target", "host", "--out", str(paths["out"])]
    return paths


@pytest.fixture(scope="session")
def keras3_models(tmp_path_factory):
    """The small Keras 3 models of tests/keras3_models.py and their data, built once per
    session in a Keras 3 process (tf_keras owns this one)."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("keras3")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    script = Path(__file__).with_name("keras3_models.py")
    from edgeprune.sources.keras3 import worker

    worker()  # the exports' Keras 3 process starts (imports TensorFlow) while the models are built
    proc = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
