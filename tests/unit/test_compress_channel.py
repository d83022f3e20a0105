"""Channel pruning: the graph shrinks, and what stays computes what it computed before."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.compress.channel import prune_channels
from edgeprune.errors import ConfigError


def _widths(model) -> dict[str, int]:
    out = {}
    for layer in model.layers:
        config = layer.get_config()
        if "filters" in config or "units" in config:
            out[layer.name] = config.get("filters", config.get("units"))
    return out


def _conv_bn_conv_flatten_dense(keras):
    L = keras.layers
    inp = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(12, activation="relu", name="fc")(x)
    out = L.Dense(10, name="logits")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) if w.ndim else w
                       for w in model.get_weights()])
    bn = model.get_layer("bn1")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    return model


def _zero_channels(model, conv: str, channels: list[int], bn: str | None = None):
    kernel, bias = model.get_layer(conv).get_weights()
    kernel[..., channels] = 0.0
    bias[channels] = 0.0
    model.get_layer(conv).set_weights([kernel, bias])
    if bn:
        gamma, beta, mean, var = model.get_layer(bn).get_weights()
        beta[channels] = 0.0
        mean[channels] = 0.0
        model.get_layer(bn).set_weights([gamma, beta, mean, var])


def test_prune_channels_shrinks_conv_and_dense_widths(keras):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(10, name="logits"),
    ])
    pruned, result = prune_channels(model, ratio=0.5)
    assert _widths(pruned) == {"conv1": 4, "conv2": 4, "fc": 8, "logits": 10}
    assert pruned.count_params() < model.count_params() / 2
    assert pruned.get_layer("fc").get_weights()[0].shape == (4 * 4 * 4, 8)
    assert result.removed_fraction() == {"conv1": 0.5, "conv2": 0.5, "fc": 0.5}
    assert pruned(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 10)


def test_prune_channels_output_unchanged_when_removed_channels_are_zero_through_bn_and_flatten(keras):
    model = _conv_bn_conv_flatten_dense(keras)
    _zero_channels(model, "conv1", [1, 4, 6, 7], bn="bn1")
    _zero_channels(model, "conv2", [0, 3, 5])
    kernel, bias = model.get_layer("fc").get_weights()
    kernel[:, [2, 3, 5, 9, 10, 11]] = 0.0
    bias[[2, 3, 5, 9, 10, 11]] = 0.0
    model.get_layer("fc").set_weights([kernel, bias])

    pruned, result = prune_channels(model, ratio=0.5, importance="l2")
    assert result.kept["conv1"] == [0, 2, 3, 5] and result.kept["conv2"] == [1, 2, 4]
    assert result.kept["fc"] == [0, 1, 4, 6, 7, 8]
    x = np.random.default_rng(1).random((16, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert pruned.get_layer("bn1").get_weights()[0].shape == (4,)


def test_prune_channels_ranks_by_the_filter_with_the_following_bn_scale_folded_in(keras):
    model = _conv_bn_conv_flatten_dense(keras)
    kernel, bias = model.get_layer("conv1").get_weights()
    kernel[..., [0, 1, 2, 3]] *= 100.0            # large filters ...
    model.get_layer("conv1").set_weights([kernel, bias])
    gamma, beta, mean, var = model.get_layer("bn1").get_weights()
    gamma[[0, 1, 2, 3]] = 1e-4                     # ... that the BN scales to nearly nothing
    gamma[[4, 5, 6, 7]] = 1.0
    model.get_layer("bn1").set_weights([gamma, beta, mean, np.ones_like(var)])
    _, result = prune_channels(model, ratio=0.5)
    assert result.kept["conv1"] == [4, 5, 6, 7]


def test_prune_channels_keeps_the_dense_rows_of_kept_channels_after_flatten(keras):
    model = _conv_bn_conv_flatten_dense(keras)
    pruned, result = prune_channels(model, ratio=0.5)
    kept = np.array(result.kept["conv2"])
    rows = (np.arange(4 * 4)[:, None] * 6 + kept[None, :]).reshape(-1)   # 4x4 after pooling
    cols = np.array(result.kept["fc"])
    expected = model.get_layer("fc").get_weights()[0][rows][:, cols]
    np.testing.assert_array_equal(pruned.get_layer("fc").get_weights()[0], expected)


def test_prune_channels_shares_one_mask_when_residual_add(keras):
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    b = L.Conv2D(8, 3, padding="same", name="branch")(a)
    b = L.BatchNormalization(name="branch_bn")(b)
    x = L.Add(name="add")([a, b])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(10, name="logits")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    model.set_weights([np.abs(rng.normal(size=w.shape)).astype(np.float32) + 0.5 if w.ndim == 1
                       else rng.normal(size=w.shape).astype(np.float32)
                       for w in model.get_weights()])           # BN variances must be > 0
    _zero_channels(model, "stem", [0, 5])
    _zero_channels(model, "branch", [0, 5], bn="branch_bn")

    pruned, result = prune_channels(model, ratio=0.25)
    assert result.kept["stem"] == result.kept["branch"]
    assert result.kept["stem"] == [1, 2, 3, 4, 6, 7]
    assert pruned.get_layer("logits").get_weights()[0].shape == (6, 10)
    x = rng.random((8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_prune_channels_leaves_concatenate_inputs_intact_with_a_note(keras):
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(4, 3, padding="same", name="left")(inp)
    b = L.Conv2D(4, 3, padding="same", name="right")(inp)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Conv2D(8, 3, name="after")(x)
    x = L.Flatten()(x)
    out = L.Dense(10, name="logits")(x)
    model = keras.Model(inp, out)
    pruned, result = prune_channels(model, ratio=0.5)
    assert _widths(pruned) == {"left": 4, "right": 4, "after": 4, "logits": 10}
    assert any(n.startswith("left:") and "'cat'" in n for n in result.notes)
    assert any(n.startswith("logits:") and "output" in n for n in result.notes)


def test_prune_channels_leaves_classifier_and_original_model_intact(keras):
    model = _conv_bn_conv_flatten_dense(keras)
    before = [w.copy() for w in model.get_weights()]
    pruned, result = prune_channels(model, ratio=0.75)
    assert _widths(pruned)["logits"] == 10
    assert _widths(model) == {"conv1": 8, "conv2": 6, "fc": 12, "logits": 10}
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)
    assert "logits" not in result.kept


def test_prune_channels_shrinks_depthwise_with_its_producer(keras):
    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
        L.DepthwiseConv2D(3, padding="same", name="dw"),
        L.BatchNormalization(name="dw_bn"),
        L.ReLU(),
        L.Conv2D(8, 1, activation="relu", name="pw"),
        L.GlobalAveragePooling2D(),
        L.Dense(10, name="logits"),
    ])
    pruned, result = prune_channels(model, ratio=0.5, scope="global")
    assert pruned.get_layer("dw").get_weights()[0].shape == (3, 3, len(result.kept["conv"]), 1)
    assert pruned.get_layer("pw").get_weights()[0].shape[2] == len(result.kept["conv"])
    assert sum(len(v) for v in result.kept.values()) == 8
    assert pruned(np.zeros((1, 8, 8, 1), np.float32)).shape == (1, 10)


def test_prune_channels_shrinks_an_mlp_but_not_its_flattened_input(keras):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="fc1"),
        keras.layers.Dropout(0.1, name="drop"),
        keras.layers.Dense(16, activation="relu", name="fc2"),
        keras.layers.Dense(10, activation="softmax", name="probs"),
    ])
    pruned, result = prune_channels(model, ratio=0.5, importance="l2")
    assert _widths(pruned) == {"fc1": 16, "fc2": 8, "probs": 10}
    assert pruned.get_layer("fc1").get_weights()[0].shape == (64, 16)
    assert any(n.startswith("probs:") for n in result.notes)


def test_prune_channels_per_layer_ratio_overrides_the_global_ratio(keras):
    model = _conv_bn_conv_flatten_dense(keras)
    pruned, result = prune_channels(model, ratio=0.5, per_layer={"conv2": 0.0})
    assert _widths(pruned)["conv2"] == 6 and _widths(pruned)["conv1"] == 4


def test_prune_channels_raises_config_error_when_per_layer_names_the_classifier(keras):
    model = _conv_bn_conv_flatten_dense(keras)
    with pytest.raises(ConfigError, match="logits"):
        prune_channels(model, ratio=0.5, per_layer={"logits": 0.5})
    with pytest.raises(ConfigError, match="nope"):
        prune_channels(model, ratio=0.5, per_layer={"nope": 0.5})


def test_compress_channel_recipe_fine_tunes_and_notes_what_was_left(keras, tiny_data):
    from edgeprune.compress import compress
    from edgeprune.recipe import FinetuneSpec, PruneSpec, Recipe
    from edgeprune.types import SourceModel

    model = _conv_bn_conv_flatten_dense(keras)
    recipe = Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5),
                    finetune=FinetuneSpec(epochs=1))
    source = SourceModel(model=model, input_shape=(8, 8, 1), num_classes=10, origin="test",
                         sha256="0" * 64)
    result = compress(source, recipe, tiny_data)
    assert _widths(result.model) == {"conv1": 4, "conv2": 3, "fc": 6, "logits": 10}
    assert result.steps == ["prune(channel: conv1 8->4, conv2 6->3, fc 12->6)"]
    assert any(n.startswith("logits:") for n in result.notes)
    assert len(result.history["prune.loss"]) == 1
    assert _widths(model)["conv1"] == 8


def test_compress_channel_then_unstructured_prunes_what_the_channels_left(keras, tiny_data):
    from edgeprune.compress import compress
    from edgeprune.recipe import FinetuneSpec, PruneSpec, Recipe
    from edgeprune.types import SourceModel

    model = _conv_bn_conv_flatten_dense(keras)
    recipe = Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5, then_sparsity=0.6,
                                    stem_and_classifier_max_sparsity=None),
                    finetune=FinetuneSpec(epochs=2))
    source = SourceModel(model=model, input_shape=(8, 8, 1), num_classes=10, origin="test",
                         sha256="0" * 64)
    result = compress(source, recipe, tiny_data)
    assert _widths(result.model) == {"conv1": 4, "conv2": 3, "fc": 6, "logits": 10}
    assert result.steps == ["prune(channel: conv1 8->4, conv2 6->3, fc 12->6)", "prune(unstructured)"]
    for name in ("conv2/kernel", "fc/kernel", "logits/kernel"):
        assert 0.5 <= result.sparsity[name] <= 0.7, result.sparsity
    assert len(result.history["prune.loss"]) == 4    # both phases' epochs, in order


def test_then_sparsity_is_refused_without_channel_pruning():
    from pydantic import ValidationError

    from edgeprune.recipe import PruneSpec

    with pytest.raises(ValidationError, match="then_sparsity applies only to structure"):
        PruneSpec(structure="unstructured", then_sparsity=0.5)
