"""Quantization-aware training (QAT) with tfmot, and tfmot's collaborative schemes.

``recipe.qat.preserve`` picks what the fake-quantized fine-tuning must keep:

=========================  ==================================================  =================
preserve                   tfmot scheme                                        needs
=========================  ==================================================  =================
``none``                   ``quantize_apply`` (default 8-bit)                  nothing earlier
``sparsity``  (PQAT)       ``Default8BitPrunePreserveQuantizeScheme``          magnitude pruning
``clusters``  (CQAT)       ``Default8BitClusterPreserveQuantizeScheme``        clustering
``sparsity_and_clusters``  ``Default8BitClusterPreserveQuantizeScheme(True)``  pruning, then
(PCQAT)                                                                        sparsity-preserving
                                                                               clustering
=========================  ==================================================  =================

A combination that cannot work is a :class:`ConfigError` naming the setting and the
fix, never a silent fallback: preserving sparsity of a model with no zeros (channel
pruning leaves dense weights), preserving clusters that were never made, plain QAT
that would undo an earlier pruning or clustering step, or a layer tfmot cannot
quantize (tfmot would leave a Lambda layer float without failing).

The QAT model goes to the TFLite converter as it is (``optimizations = [DEFAULT]``,
int8 builtins only): the learned fake-quant ranges become the int8 scales, so no
calibration set is needed. :func:`export_qat_int8` does that and checks that the result
loads and runs in LiteRT with its default (XNNPACK) resolver.
"""

from __future__ import annotations

import numpy as np

from .. import keras_env
from ..errors import ConfigError, UnsupportedError
from ..recipe import FinetuneSpec, Recipe
from ..types import Dataset
from . import training

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")
_SPARSE_ENOUGH = 0.05   # a model "has sparsity to preserve" when a kernel is this sparse


def kernel_stats(model) -> dict[str, tuple[float, int]]:
    """``layer/kernel`` -> (fraction of exact zeros, distinct values), wrappers included."""
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in _KERNELS:
                value = weight.numpy()
                out[f"{layer.name}/{short}"] = (float(np.mean(value == 0)),
                                                int(np.unique(value).size))
    return out


def check_recipe(recipe: Recipe) -> None:
    """Raise ConfigError when ``recipe.qat`` cannot do what it says (checked before training)."""
    qat = recipe.qat
    if qat is None:
        return
    prune = recipe.prune
    magnitude = prune is not None and (prune.structure != "channel" or prune.then_sparsity is not None)
    wants_sparsity = qat.preserve in ("sparsity", "sparsity_and_clusters")
    wants_clusters = qat.preserve in ("clusters", "sparsity_and_clusters")
    if wants_sparsity and not magnitude:
        why = ('prune.structure = "channel" removes channels and leaves the remaining weights dense '
               '(prune.then_sparsity prunes them)'
               if prune is not None else "the recipe has no pruning step")
        raise ConfigError(f'qat.preserve = "{qat.preserve}" asks to keep zeros, but {why}',
                          where="recipe.qat.preserve",
                          expected='"sparsity" only after unstructured, block or m_by_n pruning',
                          fix=('set qat.preserve = "clusters"' if wants_clusters
                               else 'set qat.preserve = "none"')
                              + ', or prune with structure = "unstructured"')
    if wants_clusters and recipe.cluster is None:
        raise ConfigError(f'qat.preserve = "{qat.preserve}" asks to keep clusters, but the recipe '
                          "has no [cluster] step", where="recipe.qat.preserve",
                          fix="add cluster = { number_of_clusters = 16 }, or set qat.preserve = "
                              + ('"sparsity"' if wants_sparsity else '"none"'))
    if qat.preserve == "sparsity_and_clusters" and not recipe.cluster.preserve_sparsity:
        raise ConfigError('qat.preserve = "sparsity_and_clusters" needs sparsity-preserving '
                          "clustering, but cluster.preserve_sparsity = false",
                          where="recipe.cluster.preserve_sparsity",
                          fix="set cluster.preserve_sparsity = true")
    if qat.preserve == "clusters" and magnitude:
        raise ConfigError('qat.preserve = "clusters" would undo the pruning step (cluster-preserving '
                          "QAT lets the pruned zeros move)", where="recipe.qat.preserve",
                          fix='set qat.preserve = "sparsity_and_clusters" (with '
                              "cluster.preserve_sparsity = true)")
    if qat.preserve == "sparsity" and recipe.cluster is not None:
        raise ConfigError('qat.preserve = "sparsity" would undo the clustering step (QAT trains '
                          "every weight freely)", where="recipe.qat.preserve",
                          fix='set qat.preserve = "sparsity_and_clusters"')
    if qat.preserve == "none":
        undone = []
        if magnitude:
            undone.append(("pruning", '"sparsity"'))
        if recipe.cluster is not None:
            undone.append(("clustering", '"clusters"'))
        if undone:
            steps = " and ".join(u[0] for u in undone)
            keep = '"sparsity_and_clusters"' if len(undone) == 2 else undone[0][1]
            raise ConfigError(f'qat.preserve = "none" would undo the {steps} step: plain QAT '
                              "trains every weight freely", where="recipe.qat.preserve",
                              fix=f"set qat.preserve = {keep}, or drop the {steps} step")


def check_model(recipe: Recipe, model) -> None:
    """Raise ConfigError when the model itself defeats ``recipe.qat`` (measured, not assumed)."""
    check_recipe(recipe)
    if recipe.qat.preserve in ("sparsity", "sparsity_and_clusters"):
        stats = kernel_stats(model)
        if not any(zeros >= _SPARSE_ENOUGH for zeros, _ in stats.values()):
            densest = ", ".join(f"{n} {z:.0%}" for n, (z, _) in list(stats.items())[:4])
            raise ConfigError(f'qat.preserve = "{recipe.qat.preserve}" asks to keep zeros, but no '
                              f"kernel is at least {_SPARSE_ENOUGH:.0%} zeros ({densest})",
                              where="recipe.qat.preserve",
                              fix='set qat.preserve = "none", or raise prune.final_sparsity')
    for layer in model.layers:
        if layer.__class__.__name__ == "Lambda":
            raise ConfigError(f"layer {layer.name!r} is a Lambda layer, which tfmot's QAT leaves "
                              "float (it would not be quantization-aware)",
                              where=f"recipe.qat (layer {layer.name})",
                              fix="replace the Lambda with a built-in layer, or remove [qat] "
                                  "(post-training int8 quantization still applies)")


def _scheme(preserve: str):
    combine = keras_env.tfmot().experimental.combine
    if preserve == "sparsity":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if preserve == "clusters":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    if preserve == "sparsity_and_clusters":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return None


def quantize_aware(model, recipe: Recipe, data: Dataset,
                   history: dict[str, list[float]] | None = None):
    """Return the QAT model of a copy of ``model`` (float, wrapper-free), fine-tuned for
    ``recipe.qat.epochs`` epochs; ``history`` gets ``qat.<metric>`` per epoch."""
    k = keras_env.keras()
    tfmot = keras_env.tfmot()
    spec = recipe.qat
    finetune: FinetuneSpec = recipe.finetune
    history = {} if history is None else history
    check_model(recipe, model)
    work = k.models.clone_model(model)
    work.set_weights(model.get_weights())
    quant = tfmot.quantization.keras
    try:
        annotated = quant.quantize_annotate_model(work)
        scheme = _scheme(spec.preserve)
        qat_model = (quant.quantize_apply(annotated, scheme) if scheme is not None
                     else quant.quantize_apply(annotated))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        layer = first.split(":")[0].replace("Layer ", "") if first.startswith("Layer ") else None
        raise ConfigError(f"tfmot cannot make this model quantization-aware: {first[:300]}",
                          where=f"recipe.qat (layer {layer})" if layer else "recipe.qat",
                          fix="remove [qat] from the recipe (post-training int8 quantization "
                              "still applies), or replace that layer with one tfmot supports") from None
    training.fit(qat_model, data, epochs=spec.epochs, batch_size=finetune.batch_size,
                 learning_rate=finetune.learning_rate, phase="qat", history=history)
    if spec.preserve in ("clusters", "sparsity_and_clusters"):
        qat_model = keras_env.tfmot().experimental.combine.strip_clustering_cqat(qat_model)
    return qat_model


def export_qat_int8(qat_model, representative: np.ndarray, int8_io: bool,
                    sparse: bool = False) -> bytes:
    """Full-int8 TFLite of a QAT model, checked to load and run in LiteRT (default resolver).

    The converter uses the fake-quant ranges learned in QAT; ``representative`` only
    serves ops without them and the load check.
    """
    from ..export.tflite import sparsify, to_tflite

    data = to_tflite(qat_model, "int8", representative=representative, int8_io=int8_io,
                     quantization_aware=True)
    data = sparsify(data) if sparse else data
    check_loads(data, representative[:1])
    return data


def check_loads(tflite: bytes, sample: np.ndarray) -> None:
    """Load ``tflite`` in LiteRT with its default resolver (XNNPACK) and invoke it once."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_content=tflite)
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        x = sample.astype(np.float32)
        if detail["dtype"] != np.float32:
            scale, zero = detail["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(detail["dtype"])
        interp.set_tensor(detail["index"], x.reshape(detail["shape"]))
        interp.invoke()
    except (RuntimeError, ValueError) as exc:
        raise UnsupportedError(f"the QAT int8 model does not run in LiteRT: {exc}",
                               where="export.tflite (int8, QAT)",
                               fix="set recipe.tflite_sparse_encoding = \"auto\" (the sparse encoding "
                                   "only where it runs) or \"never\"") from None
