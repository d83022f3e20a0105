"""prune.py additions: scope = "global" and block sparsity on models with convolutions."""

from __future__ import annotations

import numpy as np

from edgeprune.compress.prune import global_ratios, prune
from edgeprune.recipe import FinetuneSpec, PruneSpec


def _model(keras):
    from edgeprune import keras_env

    keras_env.set_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="fc"),
        keras.layers.Dense(10, name="logits"),
    ])
    weights = model.get_weights()
    weights[0] = weights[0] * 10.0        # the conv kernel is 10x larger than the rest
    model.set_weights(weights)
    return model


def test_global_ratios_rank_all_kernels_together(keras):
    model = _model(keras)
    ratios = global_ratios(model, PruneSpec(scope="global", final_sparsity=0.5))
    sizes = {l.name: l.get_weights()[0].size for l in model.layers if l.get_weights()}
    overall = sum(ratios[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert abs(overall - 0.5) < 1e-3
    assert ratios["conv"] < 0.1 < ratios["fc"]


def test_prune_global_scope_prunes_the_large_conv_least(keras, tiny_data):
    spec = PruneSpec(scope="global", schedule="constant", final_sparsity=0.5)
    stripped, _ = prune(_model(keras), spec, FinetuneSpec(epochs=1), tiny_data)
    zeros = {l.name: float(np.mean(l.get_weights()[0] == 0)) for l in stripped.layers
             if l.get_weights()}
    assert zeros["conv"] < 0.1 and zeros["fc"] > 0.5


def test_prune_block_leaves_convolutions_dense_with_a_note(keras, tiny_data):
    notes: list[str] = []
    spec = PruneSpec(structure="block", block_size=(16, 1), schedule="constant", final_sparsity=0.5)
    stripped, _ = prune(_model(keras), spec, FinetuneSpec(epochs=1), tiny_data, notes)
    fc = stripped.get_layer("fc").get_weights()[0]
    assert np.mean(fc == 0) >= 0.49
    blocks = (fc.reshape(fc.shape[0] // 16, 16, fc.shape[1]) == 0).all(axis=1)
    assert np.mean(blocks) >= 0.49                       # whole 16x1 blocks are zero
    assert np.mean(stripped.get_layer("conv").get_weights()[0] == 0) == 0.0
    assert notes and notes[0].startswith("conv: left dense: block sparsity (16, 1)")


def test_outputs_probabilities_sees_through_pruning_wrapper(keras):
    from edgeprune import keras_env
    from edgeprune.compress.training import outputs_probabilities

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    wrapped = keras_env.tfmot().sparsity.keras.prune_low_magnitude(model)
    assert outputs_probabilities(model) and outputs_probabilities(wrapped)
