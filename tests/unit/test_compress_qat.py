"""QAT, PQAT, PCQAT with tfmot; the QAT int8 TFLite runs in LiteRT; bad combinations fail."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.compress.qat import check_recipe, export_qat_int8, kernel_stats, quantize_aware
from edgeprune.errors import ConfigError
from edgeprune.recipe import ClusterSpec, FinetuneSpec, PruneSpec, QatSpec, Recipe

FINETUNE = FinetuneSpec(epochs=1, batch_size=32, learning_rate=1e-3)


def _litert_accuracy(tflite: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)   # the default resolver: XNNPACK
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    scale, zero = inp["quantization"]
    hits = 0
    for i in range(len(x)):
        q = np.clip(np.round(x[i:i + 1] / scale + zero), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        hits += int(np.argmax(interp.get_tensor(out["index"])) == y[i])
    return hits / len(x)


def _qat_kernel(qat_model, name: str) -> np.ndarray:
    """The float kernel a QuantizeWrapper trains for layer ``name``."""
    for layer in qat_model.layers:
        if getattr(layer, "layer", None) is not None and layer.layer.name == name:
            return next(w.numpy() for w in layer.weights if w.name.endswith("/kernel:0"))
    raise KeyError(name)


def _trained(keras, data, epochs=8):
    from edgeprune import keras_env

    keras_env.set_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, name="logits"),
    ])
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def test_export_qat_int8_loads_in_litert_and_keeps_the_float_accuracy(keras, tiny_data):
    model = _trained(keras, tiny_data)
    float_acc = model.evaluate(tiny_data.x_test, tiny_data.y_test, verbose=0)[1]
    recipe = Recipe(prune=None, qat=QatSpec(epochs=1), finetune=FINETUNE)
    history: dict[str, list[float]] = {}
    qat_model = quantize_aware(model, recipe, tiny_data, history)
    tflite = export_qat_int8(qat_model, tiny_data.representative(50), int8_io=True)
    acc = _litert_accuracy(tflite, tiny_data.x_test, tiny_data.y_test)
    assert float_acc > 0.8
    assert acc >= float_acc - 0.05
    assert len(history["qat.loss"]) == 1


def test_quantize_aware_keeps_the_zeros_when_preserve_sparsity(keras, tiny_data):
    from edgeprune.compress.prune import prune
    from edgeprune.measure.sparsity import tflite_sparsity

    model = _trained(keras, tiny_data, epochs=3)
    spec = PruneSpec(structure="unstructured", schedule="constant", final_sparsity=0.6,
                     stem_and_classifier_max_sparsity=None)   # both layers are ends
    pruned, _ = prune(model, spec, FINETUNE, tiny_data)
    zeros = {n: z for n, (z, _) in kernel_stats(pruned).items()}
    assert min(zeros.values()) >= 0.59
    masks = {l.name: l.get_weights()[0] == 0 for l in pruned.layers if l.get_weights()}
    recipe = Recipe(prune=spec, qat=QatSpec(preserve="sparsity", epochs=1), finetune=FINETUNE)
    qat_model = quantize_aware(pruned, recipe, tiny_data)
    for name, mask in masks.items():
        assert np.all(_qat_kernel(qat_model, name)[mask] == 0.0), name
    tflite = export_qat_int8(qat_model, tiny_data.representative(20), int8_io=False)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "pqat.tflite"
        file.write_bytes(tflite)
        read_back = tflite_sparsity(file, ["conv", "logits"])
    assert read_back["conv"] >= zeros["conv/kernel"] and read_back["logits"] >= zeros["logits/kernel"]


def test_quantize_aware_keeps_clusters_and_zeros_when_preserve_sparsity_and_clusters(keras, tiny_data):
    from edgeprune.compress.cluster import cluster

    model = _trained(keras, tiny_data, epochs=3)
    weights = model.get_weights()
    mask = np.random.default_rng(0).random(weights[2].shape) < 0.5
    weights[2] = np.where(mask, 0.0, weights[2]).astype(np.float32)
    model.set_weights(weights)
    cspec = ClusterSpec(number_of_clusters=8, preserve_sparsity=True, epochs=1)
    clustered, _, _ = cluster(model, cspec, FINETUNE, tiny_data)
    recipe = Recipe(prune=PruneSpec(final_sparsity=0.5), cluster=cspec, finetune=FINETUNE,
                    qat=QatSpec(preserve="sparsity_and_clusters", epochs=1))
    qat_model = quantize_aware(clustered, recipe, tiny_data)
    kernel = _qat_kernel(qat_model, "logits")
    assert np.all(kernel[mask] == 0.0)
    assert np.unique(kernel).size <= 9
    tflite = export_qat_int8(qat_model, tiny_data.representative(20), int8_io=True)
    assert _litert_accuracy(tflite, tiny_data.x_test[:50], tiny_data.y_test[:50]) > 0.5


@pytest.mark.parametrize("recipe, setting", [
    (Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5),
            qat=QatSpec(preserve="sparsity")), 'structure = "channel"'),
    (Recipe(prune=None, qat=QatSpec(preserve="sparsity")), "no pruning step"),
    (Recipe(prune=None, qat=QatSpec(preserve="clusters")), "no [cluster] step"),
    (Recipe(qat=QatSpec(preserve="none")), "undo the pruning"),
    (Recipe(prune=None, cluster=ClusterSpec(), qat=QatSpec(preserve="none")), "undo the clustering"),
    (Recipe(cluster=ClusterSpec(), qat=QatSpec(preserve="clusters")), "undo the pruning"),
    (Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.3, then_sparsity=0.9),
            cluster=ClusterSpec(), qat=QatSpec(preserve="clusters")), "undo the pruning"),
    (Recipe(cluster=ClusterSpec(), qat=QatSpec(preserve="sparsity")), "undo the clustering"),
    (Recipe(cluster=ClusterSpec(preserve_sparsity=False),
            qat=QatSpec(preserve="sparsity_and_clusters")), "preserve_sparsity = false"),
])
def test_check_recipe_raises_config_error_when_qat_cannot_preserve_it(recipe, setting):
    with pytest.raises(ConfigError) as caught:
        check_recipe(recipe)
    assert setting in str(caught.value)
    assert caught.value.fix


def test_check_recipe_accepts_the_collaborative_schemes():
    check_recipe(Recipe(prune=None, qat=QatSpec(preserve="none")))
    check_recipe(Recipe(qat=QatSpec(preserve="sparsity")))
    check_recipe(Recipe(prune=None, cluster=ClusterSpec(), qat=QatSpec(preserve="clusters")))
    check_recipe(Recipe(cluster=ClusterSpec(), qat=QatSpec(preserve="sparsity_and_clusters")))
    check_recipe(Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.3, then_sparsity=0.9),
                        cluster=ClusterSpec(), qat=QatSpec(preserve="sparsity_and_clusters")))


def test_quantize_aware_raises_config_error_naming_a_layer_tfmot_cannot_quantize(keras, tiny_data):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.LayerNormalization(name="norm"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="logits"),
    ])
    with pytest.raises(ConfigError, match="norm") as caught:
        quantize_aware(model, Recipe(prune=None, qat=QatSpec()), tiny_data)
    assert "remove [qat]" in str(caught.value)


def test_quantize_aware_raises_config_error_when_a_lambda_would_stay_float(keras, tiny_data):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.Lambda(lambda t: t * 2.0, name="double"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="logits"),
    ])
    with pytest.raises(ConfigError, match="double"):
        quantize_aware(model, Recipe(prune=None, qat=QatSpec()), tiny_data)
