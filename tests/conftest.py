"""Shared fixtures: tiny models built in code, tiny data, an isolated cache."""

from __future__ import annotations

import os

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
