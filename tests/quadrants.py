"""A small CNN and its data, built in code: 24x24 RGB noise with one bright quadrant,
the class being the quadrant. ``quadrant_cnn(keras, channels)`` makes the model (two
convolutions of ``channels`` filters); with ``train=(x, y)`` it is fitted in seconds to
full accuracy, so its int8 files agree with it. Used by the load test of `check` and by
``benchmarks/check_noise.py``."""

from __future__ import annotations

import numpy as np


def quadrants(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.random((n, 24, 24, 3), dtype=np.float32) * 0.2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * 12:(r + 1) * 12, q * 12:(q + 1) * 12] += 0.8
    return x, y


def quadrant_cnn(keras, channels: int, train: tuple[np.ndarray, np.ndarray] | None = None):
    import edgeprune.keras_env as keras_env

    keras_env.set_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(24, 24, 3)),
        keras.layers.Conv2D(channels, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(channels, 3, strides=2, activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(4, name="logits")], name="cnn")
    if train is not None:
        model.compile(keras.optimizers.Adam(0.01),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(*train, epochs=10, batch_size=32, verbose=0)
    return model
