"""Reference model: a small CNN for scikit-learn's 8x8 handwritten digits.

The data ships inside scikit-learn (1,797 images, 10 classes), so nothing is
downloaded. Splits are stratified and fixed (seed 0): 60% train, 20% validation,
20% test.
"""

from __future__ import annotations

import numpy as np

NAME = "digits"
INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 2e-3


def load_arrays() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.25,
                                                      random_state=0, stratify=y_rest)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
            "x_test": x_test, "y_test": y_test}


def build(keras):
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=INPUT_SHAPE, name="image"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(64, activation="relu", name="fc1"),
        layers.Dense(NUM_CLASSES, name="logits"),
    ], name="digits_cnn")


def train(model, arrays: dict[str, np.ndarray], keras, epochs: int = EPOCHS):
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(arrays["x_train"], arrays["y_train"], epochs=epochs, batch_size=BATCH_SIZE,
              validation_data=(arrays["x_val"], arrays["y_val"]), shuffle=True, verbose=0)
    return model
