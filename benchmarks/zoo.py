"""Small equivalents of five third-party edge models, with deterministic data built here.

Each is the same shape of network as its original, shrunk where the original would not
train in minutes on two cores; nothing is downloaded:

    resnet8   MLCommons Tiny image classification ResNet-8: 3 residual stacks with
              BatchNormalization and adds (16/32/64 filters), 32x32x3, 10 classes
    dscnn     MLCommons Tiny keyword spotting DS-CNN: a 10x4 stem and 4 depthwise-separable
              blocks with BatchNormalization, 49x10x1 "MFCC" input, 10 classes
    vww       MobileNetV1 (alpha 0.25) for visual wake words, on 48x48x3, 2 classes
    ad        MLCommons Tiny anomaly detection: a 640-128x4-8-128x4-640 dense autoencoder
              with BatchNormalization (regression: reconstruction)
    mbv2      tf_keras.applications.MobileNetV2(alpha=0.35, weights=None), 32x32x3, 10 classes

Data: scikit-learn's digits (1,797 8x8 images), resized to each input (bilinear), grey
copied to three channels, with fixed Gaussian noise; vww's label is "digit < 5". The
autoencoder's data are 640-vectors of a fixed 12-dimensional linear structure plus noise.
Split: the first 1,400 samples train, the rest (397) test.

    >>> model, arrays = trained("dscnn", keras, epochs=None)   # epochs None: the kind's default
"""

from __future__ import annotations

import numpy as np

KINDS = ("resnet8", "dscnn", "vww", "ad", "mbv2")
EPOCHS = {"resnet8": 12, "dscnn": 15, "vww": 15, "ad": 25, "mbv2": 25}
SPLIT = 1400


def is_classifier(kind: str) -> bool:
    return kind != "ad"


def arrays(kind: str) -> dict[str, np.ndarray]:
    if kind == "ad":
        rng = np.random.default_rng(0)
        basis = rng.normal(size=(12, 640)).astype(np.float32)
        codes = rng.normal(size=(1797, 12)).astype(np.float32)
        x = np.tanh(codes @ basis / 4.0) + rng.normal(scale=0.05, size=(1797, 640))
        x = x.astype(np.float32)
        return {"x_train": x[:SPLIT], "y_train": x[:SPLIT], "x_test": x[SPLIT:], "y_test": x[SPLIT:]}
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    shape = {"resnet8": (32, 32, 3), "dscnn": (49, 10, 1), "vww": (48, 48, 3), "mbv2": (32, 32, 3)}[kind]
    images = digits.images / 16.0
    resized = np.stack([zoom(img, (shape[0] / 8, shape[1] / 8), order=1) for img in images])
    x = np.repeat(resized[..., None], shape[2], axis=-1)
    x = (x + np.random.default_rng(1).normal(scale=0.1, size=x.shape)).astype(np.float32)
    y = digits.target.astype(np.int64)
    if kind == "vww":
        y = (y < 5).astype(np.int64)
    return {"x_train": x[:SPLIT], "y_train": y[:SPLIT], "x_test": x[SPLIT:], "y_test": y[SPLIT:]}


def build(kind: str, keras):
    return {"resnet8": _resnet8, "dscnn": _dscnn, "vww": _vww, "ad": _ad, "mbv2": _mbv2}[kind](keras)


def _bn_relu(L, x):
    return L.ReLU()(L.BatchNormalization()(x))


def _resnet8(keras):
    L = keras.layers
    inp = keras.Input((32, 32, 3))
    x = _bn_relu(L, L.Conv2D(16, 3, padding="same")(inp))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = _bn_relu(L, L.Conv2D(filters, 3, strides=stride, padding="same")(x))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(8)(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="resnet8")


def _dscnn(keras):
    L = keras.layers
    inp = keras.Input((49, 10, 1))
    x = _bn_relu(L, L.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(inp))
    for _ in range(4):
        x = _bn_relu(L, L.DepthwiseConv2D(3, padding="same")(x))
        x = _bn_relu(L, L.Conv2D(64, 1)(x))
    x = L.Flatten()(L.AveragePooling2D((25, 5))(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="dscnn")


def _vww(keras):
    L = keras.layers
    inp = keras.Input((48, 48, 3))
    x = _bn_relu(L, L.Conv2D(8, 3, strides=2, padding="same")(inp))
    for filters, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2)):
        x = _bn_relu(L, L.DepthwiseConv2D(3, strides=stride, padding="same")(x))
        x = _bn_relu(L, L.Conv2D(filters, 1)(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(2, activation="softmax")(x), name="vww")


def _ad(keras):
    L = keras.layers
    inp = keras.Input((640,))
    x = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = _bn_relu(L, L.Dense(units)(x))
    return keras.Model(inp, L.Dense(640)(x), name="ad")


def _mbv2(keras):
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    for layer in model.layers:   # Keras' 0.999 needs far more steps than 1,400 samples give
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return model


def trained(kind: str, keras, epochs: int | None = None, seed: int = 0):
    """The model trained with a fixed seed, and its arrays."""
    from edgeprune import keras_env

    data = arrays(kind)
    keras_env.set_seed(seed)
    model = build(kind, keras)
    if is_classifier(kind):
        model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    else:
        model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(data["x_train"], data["y_train"], epochs=epochs or EPOCHS[kind], batch_size=32,
              shuffle=True, verbose=0)
    return model, data
