"""prune.py additions: scope = "global" and block sparsity on models with convolutions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeprune.compress.prune import global_ratios, prune
from edgeprune.recipe import FinetuneSpec, PruneSpec


def _model(keras):
    from conftest import build_conv_dense

    model = build_conv_dense(keras, hidden=(32,))
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


def _model_with_a_small_layer(keras):
    """conv (stem) -> fc1 (tiny weights: the global ranking would empty it) -> fc2 -> logits."""
    from conftest import build_conv_dense

    model = build_conv_dense(keras, hidden=(32, 32))
    weights = model.get_weights()
    weights[2] = weights[2] * 0.01
    model.set_weights(weights)
    return model


def test_global_ratios_hold_a_layer_at_the_floor_and_spread_the_rest(keras):
    model = _model_with_a_small_layer(keras)
    notes: list[str] = []
    spec = PruneSpec(scope="global", final_sparsity=0.8)
    ratios = global_ratios(model, spec, notes)
    sizes = {l.name: l.get_weights()[0].size for l in model.layers if l.get_weights()}
    assert ratios["fc1"] == pytest.approx(0.9) and ratios["conv"] <= 0.5 and ratios["logits"] <= 0.5
    overall = sum(ratios[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert overall == pytest.approx(0.8, abs=2e-3)
    assert any(re.match(r"fc1: the global ranking would prune 9\d\.\d% of its weights; held at 90% "
                        r"\(the floor: prune.max_layer_sparsity\)", n) for n in notes)


def test_global_ratios_hold_the_classifier_at_half_unless_told_otherwise(keras):
    model = _model(keras)
    weights = model.get_weights()
    weights[-2] = weights[-2] * 0.01                   # the classifier's weights are the smallest
    model.set_weights(weights)
    notes: list[str] = []
    held = global_ratios(model, PruneSpec(scope="global", final_sparsity=0.5), notes)
    free = global_ratios(model, PruneSpec(scope="global", final_sparsity=0.5,
                                          stem_and_classifier_max_sparsity=None))
    assert held["logits"] == pytest.approx(0.5) and free["logits"] > 0.85
    assert any(n.startswith("logits: the global ranking would prune") and
               "(the stem or the classifier: prune.stem_and_classifier_max_sparsity)" in n for n in notes)


def test_prune_warns_naming_the_layer_past_the_floor(keras, tiny_data):
    notes: list[str] = []
    spec = PruneSpec(schedule="constant", final_sparsity=0.5, per_layer={"fc": 0.95})
    prune(_model(keras), spec, FinetuneSpec(epochs=1), tiny_data, notes)
    warning = [n for n in notes if n.startswith("warning:")]
    assert len(warning) == 1 and warning[0].startswith("warning: layer 'fc' is 95.0% zeros (")
    assert "past prune.max_layer_sparsity = 0.9" in warning[0]
    assert any(n.startswith("conv: pruned to 50%") for n in notes) is False   # 0.5 is within the cap
