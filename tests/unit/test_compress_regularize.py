"""The sparsity-inducing fine-tuning phase before pruning."""

from __future__ import annotations

import numpy as np

from edgeprune.compress import training
from edgeprune.compress.regularize import penalized_kernels, regularize
from edgeprune.recipe import FinetuneSpec, RegularizeSpec

FINETUNE = FinetuneSpec(epochs=2, batch_size=32, learning_rate=3e-3)


def _model(keras, seed=0):
    from edgeprune import keras_env

    keras_env.set_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(10, name="logits"),
    ])


def _plain(keras, data, epochs):
    from edgeprune import keras_env

    model = _model(keras)
    keras_env.set_seed(1)
    training.fit(model, data, epochs=epochs, batch_size=FINETUNE.batch_size,
                 learning_rate=FINETUNE.learning_rate, phase="plain", history={})
    return model


def _regularized(keras, data, kind, strength):
    from edgeprune import keras_env

    model = _model(keras)
    keras_env.set_seed(1)
    history: dict[str, list[float]] = {}
    out = regularize(model, RegularizeSpec(kind=kind, strength=strength, epochs=2), FINETUNE,
                     data, history)
    return model, out, history


def _kernel(model, name):
    return model.get_layer(name).get_weights()[0]


def test_regularize_l1_shrinks_kernels_below_plain_finetuning(keras, tiny_data):
    plain = _plain(keras, tiny_data, epochs=2)
    _, out, _ = _regularized(keras, tiny_data, "l1", 1e-2)
    for name in ("conv", "fc", "logits"):
        assert np.abs(_kernel(out, name)).sum() < 0.9 * np.abs(_kernel(plain, name)).sum()


def test_regularize_group_lasso_shrinks_channel_norms_but_not_the_classifier(keras, tiny_data):
    plain = _plain(keras, tiny_data, epochs=2)
    _, out, history = _regularized(keras, tiny_data, "group_lasso", 1e-2)

    def channel_norms(model, name):
        k = _kernel(model, name)
        return np.sqrt((k.reshape(-1, k.shape[-1]) ** 2).sum(axis=0))

    for name in ("conv", "fc"):
        assert channel_norms(out, name).sum() < 0.9 * channel_norms(plain, name).sum()
    assert [v.name.split("/")[0] for v in penalized_kernels(out, "group_lasso")] == ["conv", "fc"]
    assert len(history["regularize.penalty"]) == 2
    assert history["regularize.penalty"][-1] < history["regularize.penalty"][0]


def test_regularize_returns_a_model_without_the_penalty_and_leaves_the_input_alone(keras, tiny_data):
    model, out, history = _regularized(keras, tiny_data, "l2", 1e-3)
    before = _model(keras).get_weights()
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)
    assert out.losses == []
    assert out is not model
    assert sorted(k for k in history if k.startswith("regularize.")) == [
        "regularize.accuracy", "regularize.loss", "regularize.penalty",
        "regularize.val_accuracy", "regularize.val_loss"]
    assert history["regularize.loss"][-1] < history["regularize.loss"][0]
