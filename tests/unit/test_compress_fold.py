"""BatchNormalization folding before clustering: same function, clusters kept in the file."""

from __future__ import annotations

import numpy as np

from edgeprune import keras_env
from edgeprune.compress.cluster import cluster
from edgeprune.compress.fold import fold_batchnorm
from edgeprune.export.tflite import to_tflite
from edgeprune.measure.breakdown import kernel_values_tflite
from edgeprune.recipe import ClusterSpec, FinetuneSpec


def _randomize_batchnorms(model, seed: int = 0):
    """Statistics far from identity, as a trained model has them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.3, 3.0, n), rng.normal(0, 1, n),
                               rng.normal(0, 1, n), rng.uniform(0.1, 4.0, n)])


def _inputs(shape, n=16):
    return np.random.default_rng(1).normal(size=(n, *shape)).astype(np.float32)


def test_fold_keeps_the_function_and_freezes_each_folded_batchnorm(keras):
    L = keras.layers
    keras_env.set_seed(0)
    inp = keras.Input((12, 10, 1))
    x = L.ReLU()(L.BatchNormalization(name="bn_stem")(L.Conv2D(8, 3, padding="same", use_bias=False,
                                                                name="stem")(inp)))
    x = L.ReLU()(L.BatchNormalization(name="bn_dw")(L.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                                                      name="dw")(x)))
    x = L.ReLU()(L.BatchNormalization(name="bn_pw")(L.Conv2D(16, 1, name="pw")(x)))
    x = L.BatchNormalization(name="bn_fc")(L.Dense(6, name="fc")(L.Flatten()(x)))
    model = keras.Model(inp, L.Dense(3, name="logits")(x))
    _randomize_batchnorms(model)
    before = [w.copy() for w in model.get_weights()]
    xs = _inputs((12, 10, 1))

    folded, pairs = fold_batchnorm(model)

    assert pairs == [("stem", "bn_stem"), ("dw", "bn_dw"), ("pw", "bn_pw"), ("fc", "bn_fc")]
    reference = model(xs).numpy()
    np.testing.assert_allclose(folded(xs).numpy(), reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    for _, bn in pairs:
        layer = folded.get_layer(bn)
        assert not layer.trainable
        gamma, _beta, mean, var = layer.get_weights()
        assert np.all(gamma == 1.0) and np.all(mean == 0.0)
        assert np.all(var + np.float32(layer.epsilon) == np.float32(1.0))   # scale exactly 1
    for old, now in zip(before, model.get_weights()):                       # the source is untouched
        np.testing.assert_array_equal(old, now)


def test_fold_leaves_what_it_cannot_fold_exactly(keras):
    L = keras.layers
    keras_env.set_seed(0)
    inp = keras.Input((8, 8, 1))
    x = L.BatchNormalization(name="bn_after_relu")(L.Conv2D(4, 3, activation="relu", name="relu_conv")(inp))
    y = L.Conv2D(4, 1, name="shared")(x)
    x = L.Add()([L.BatchNormalization(name="bn_of_shared")(y), y])       # "shared" feeds two layers
    x = L.BatchNormalization(axis=1, name="bn_axis1")(L.Conv2D(4, 1, name="axis1_conv")(x))
    model = keras.Model(inp, L.Dense(3)(L.Flatten()(x)))
    _randomize_batchnorms(model)
    xs = _inputs((8, 8, 1))

    folded, pairs = fold_batchnorm(model)

    assert pairs == []
    np.testing.assert_array_equal(folded(xs).numpy(), model(xs).numpy())
    assert all(layer.trainable for layer in folded.layers)


def test_clusters_survive_conversion_only_when_batchnorm_is_folded(keras, tiny_data, tmp_path):
    """Per-tensor int8: the converter folds a BatchNormalization's per-channel scale into the
    kernel, so clustered kernels keep their 4 values in the file only when folded first."""
    L = keras.layers
    keras_env.set_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, name="conv"), L.BatchNormalization(name="bn"), L.ReLU(),
        L.Flatten(), L.Dense(10, name="logits"),
    ])
    _randomize_batchnorms(model)
    finetune = FinetuneSpec(epochs=1, batch_size=32, learning_rate=1e-4)
    counts = {}
    for fold in (True, False):
        notes: list[str] = []
        spec = ClusterSpec(number_of_clusters=4, preserve_sparsity=False, epochs=1, fold_batchnorm=fold)
        out, _, _ = cluster(model, spec, finetune, tiny_data, notes=notes)
        assert (notes == ["cluster: 1 BatchNormalization layer(s) folded into the kernel before them and "
                          "frozen (bn into conv), so that the clustered values are the values the file "
                          "holds"]) is fold
        path = tmp_path / f"fold_{fold}.tflite"
        path.write_bytes(to_tflite(out, "int8", representative=tiny_data.x_train[:64], per_channel=False))
        counts[fold] = kernel_values_tflite(path)     # the conv kernel and the dense one
    assert len(counts[True]) == 2 and all(n <= 4 for n in counts[True].values())
    low, high = sorted(counts[False].values())    # the dense kernel has no BatchNormalization after it
    assert low <= 4 and high > 8, counts


def test_cluster_preserving_qat_keeps_the_folded_batchnorm_frozen(keras, tiny_data):
    from edgeprune.compress import compress
    from edgeprune.recipe import QatSpec, Recipe
    from edgeprune.types import SourceModel

    L = keras.layers
    keras_env.set_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv"), L.BatchNormalization(name="bn"),
                              L.ReLU(), L.Flatten(), L.Dense(10, name="logits")])
    _randomize_batchnorms(model)
    recipe = Recipe(prune=None, cluster=ClusterSpec(number_of_clusters=4, preserve_sparsity=False, epochs=1),
                    qat=QatSpec(preserve="clusters", epochs=1), finetune=FinetuneSpec(epochs=1))
    source = SourceModel(model=model, input_shape=(8, 8, 1), num_classes=10, origin="test", sha256="0" * 64)
    result = compress(source, recipe, tiny_data)
    assert result.steps == ["cluster(4)", "qat(preserve=clusters)"]
    assert not result.model.get_layer("bn").trainable
    bn = result.qat_model.get_layer("quant_bn").layer       # QAT fine-tuned it frozen: still identity
    assert not bn.trainable and np.all(bn.gamma.numpy() == 1.0) and np.all(bn.moving_mean.numpy() == 0.0)
