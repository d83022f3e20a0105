"""Builds the small Keras 3 models the tests export, in a Keras 3 process of its own:

    python tests/keras3_models.py OUT_DIR

(run with TF_USE_LEGACY_KERAS unset; tests/conftest.py does that). Writes, trained
briefly with seed 0 on scikit-learn's digits or on token sequences:

    cnn.keras          Sequential: Conv2D, BatchNormalization, MaxPooling2D, Dense softmax
    residual.keras     functional: two Conv2D joined by a residual Add, ReLU, pooling, Flatten, logits
    transformer.keras  functional: token Embedding, MultiHeadAttention, residual Add,
                       LayerNormalization, GlobalAveragePooling1D, logits
    ops.keras          functional with a keras.ops call (no tf_keras layer for it)
    digits.npz, digits_flat.npz, tokens.npz   their data
"""

import os
import sys

os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402


def main(out: str) -> None:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None][:600]
    y = digits.target[:600].astype(np.int64)
    np.savez(os.path.join(out, "digits.npz"), x_train=x[:450], y_train=y[:450], x_test=x[450:], y_test=y[450:])
    flat = x.reshape(len(x), -1)
    np.savez(os.path.join(out, "digits_flat.npz"), x_train=flat[:450], y_train=y[:450], x_test=flat[450:],
             y_test=y[450:])
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, (600, 8))
    labels = (tokens < 5).sum(axis=1).clip(0, 2)  # how many small tokens: 0, 1, 2 or more
    np.savez(os.path.join(out, "tokens.npz"), x_train=tokens[:450], y_train=labels[:450],
             x_test=tokens[450:], y_test=labels[450:])

    keras.utils.set_random_seed(0)
    logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cnn = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu"),
                            layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
                            layers.Dense(10, activation="softmax")], name="cnn")
    cnn.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    cnn.fit(x[:450], y[:450], epochs=15, batch_size=32, verbose=0)
    cnn.save(os.path.join(out, "cnn.keras"))

    inp = keras.Input((8, 8, 1))
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    branch = layers.Conv2D(8, 3, padding="same", name="branch")(h)
    h = layers.ReLU()(layers.Add(name="residual")([h, branch]))
    out_ = layers.Dense(10, name="logits")(layers.Flatten()(layers.MaxPooling2D()(h)))
    residual = keras.Model(inp, out_, name="residual_cnn")
    residual.compile("adam", logits, metrics=["accuracy"])
    residual.fit(x[:450], y[:450], epochs=15, batch_size=32, verbose=0)
    residual.save(os.path.join(out, "residual.keras"))

    inp = keras.Input((8,), dtype="int32")
    e = layers.Embedding(20, 8)(inp)
    a = layers.MultiHeadAttention(num_heads=2, key_dim=4)(e, e)
    h = layers.LayerNormalization()(layers.Add()([e, a]))
    out_ = layers.Dense(3)(layers.GlobalAveragePooling1D()(h))
    transformer = keras.Model(inp, out_, name="transformer")
    transformer.compile("adam", logits, metrics=["accuracy"])
    transformer.fit(tokens[:450], labels[:450], epochs=20, batch_size=32, verbose=0)
    transformer.save(os.path.join(out, "transformer.keras"))

    inp = keras.Input((64,))
    h = keras.ops.relu(layers.Dense(16)(inp)) * 2.0
    ops = keras.Model(inp, layers.Dense(10)(h), name="with_ops")
    ops.compile("adam", logits, metrics=["accuracy"])
    ops.fit(flat[:450], y[:450], epochs=15, batch_size=32, verbose=0)
    ops.save(os.path.join(out, "ops.keras"))


if __name__ == "__main__":
    main(sys.argv[1])
