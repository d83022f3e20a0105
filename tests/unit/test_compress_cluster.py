"""tfmot weight clustering: at most N values per kernel, zeros kept when asked."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.compress.cluster import cluster
from edgeprune.errors import ConfigError
from edgeprune.recipe import ClusterSpec, FinetuneSpec

FINETUNE = FinetuneSpec(epochs=1, batch_size=32, learning_rate=1e-3)


def _model(keras):
    from edgeprune import keras_env

    keras_env.set_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(24, activation="relu", name="fc"),
        keras.layers.Dense(10, name="logits"),
    ])


def _half_zero(model):
    rng = np.random.default_rng(0)
    masks = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            masks[layer.name] = rng.random(weights[0].shape) < 0.5
            weights[0] = np.where(masks[layer.name], 0.0, weights[0]).astype(np.float32)
            layer.set_weights(weights)
    return masks


def test_cluster_leaves_at_most_the_cluster_count_of_values_per_kernel(keras, tiny_data):
    model = _model(keras)
    before = [w.copy() for w in model.get_weights()]
    spec = ClusterSpec(number_of_clusters=8, preserve_sparsity=False, epochs=1)
    out, counts, history = cluster(model, spec, FINETUNE, tiny_data)
    assert set(counts) == {"conv/kernel", "fc/kernel", "logits/kernel"}
    for layer in ("conv", "fc", "logits"):
        values = np.unique(out.get_layer(layer).get_weights()[0])
        assert 2 <= values.size <= 8
        assert counts[f"{layer}/kernel"] == values.size
    assert not any(type(l).__name__.startswith("Cluster") for l in out.layers)
    assert len(history["cluster.loss"]) == 1
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)


def test_cluster_keeps_every_zero_when_preserve_sparsity(keras, tiny_data):
    model = _model(keras)
    masks = _half_zero(model)
    spec = ClusterSpec(number_of_clusters=8, preserve_sparsity=True, epochs=1)
    out, counts, _ = cluster(model, spec, FINETUNE, tiny_data)
    for layer, mask in masks.items():
        kernel = out.get_layer(layer).get_weights()[0]
        assert np.all(kernel[mask] == 0.0), layer
        assert np.unique(kernel[~mask]).size <= 8
        assert counts[f"{layer}/kernel"] <= 9      # the clusters, and the preserved zero


def test_cluster_loses_zeros_when_sparsity_not_preserved(keras, tiny_data):
    model = _model(keras)
    masks = _half_zero(model)
    spec = ClusterSpec(number_of_clusters=4, preserve_sparsity=False, epochs=1)
    out, _, _ = cluster(model, spec, FINETUNE, tiny_data)
    kernel = out.get_layer("fc").get_weights()[0]
    assert np.mean(kernel[masks["fc"]] == 0.0) < 0.5


def test_cluster_raises_config_error_when_a_layer_cannot_be_clustered(keras, tiny_data):
    class Scale(keras.layers.Layer):
        """A user layer with a weight, unknown to tfmot's clustering registry."""

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, name="conv"),
        Scale(name="scale"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="logits"),
    ])
    with pytest.raises(ConfigError, match="recipe.cluster") as caught:
        cluster(model, ClusterSpec(number_of_clusters=4, epochs=1), FINETUNE, tiny_data)
    assert "scale" in str(caught.value).lower()


def test_cluster_leaves_a_layer_with_fewer_nonzeros_than_clusters_as_it_is(keras, tiny_data):
    model = _model(keras)
    weights = model.get_weights()
    weights[0] = np.zeros_like(weights[0])
    weights[0][0, 0, 0, :3] = [0.5, -0.25, 0.125]       # 3 non-zero weights, 8 clusters asked
    model.set_weights(weights)
    notes: list[str] = []
    out, counts, _ = cluster(model, ClusterSpec(number_of_clusters=8, epochs=1), FINETUNE,
                             tiny_data, notes=notes)
    np.testing.assert_array_equal(out.get_layer("conv").get_weights()[0], weights[0])
    assert notes == ["conv: not clustered: its kernel already has 3 distinct non-zero values, "
                     "no more than number_of_clusters = 8"]
    assert counts["fc/kernel"] <= 9
