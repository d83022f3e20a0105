"""Weight clustering with tfmot: every kernel keeps at most ``number_of_clusters`` values.

Clustering alone does not make a file smaller or a model faster: the weights are
still stored dense, one float (or int8) per weight. It pays when the file is
compressed (gzip, or flash compression on the device), because a tensor with 16
distinct values compresses far better. ``preserve_sparsity`` (tfmot's
sparsity-preserving clustering) keeps the zeros of an earlier pruning step as zeros,
so pruning and clustering add up.

    >>> clustered, counts, history = cluster(model, recipe.cluster, recipe.finetune, data)
    >>> counts
    {"conv1/kernel": 16, "fc1/kernel": 16, "logits/kernel": 16}
"""

from __future__ import annotations

import numpy as np

from .. import keras_env
from ..errors import ConfigError
from ..recipe import ClusterSpec, FinetuneSpec
from ..types import Dataset
from . import training

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _init(spec: ClusterSpec):
    init = keras_env.tfmot().clustering.keras.CentroidInitialization
    return {"kmeans++": init.KMEANS_PLUS_PLUS, "linear": init.LINEAR,
            "density-based": init.DENSITY_BASED, "random": init.RANDOM}[spec.centroid_init]


def unique_values(model) -> dict[str, int]:
    """Number of distinct values in each kernel, by ``layer/kernel`` name."""
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in _KERNELS:
                out[f"{layer.name}/{short}"] = int(np.unique(weight.numpy()).size)
    return out


def _already_clustered(layer, spec: ClusterSpec) -> int | None:
    """The distinct (non-zero, when zeros are preserved) values of the layer's kernel when
    there are no more than the clusters asked for, else None. tfmot's k-means++ cannot
    start with fewer points than clusters, and there is nothing to cluster anyway."""
    for weight in layer.weights:
        if weight.name.split("/")[-1].split(":")[0] in _KERNELS:
            values = weight.numpy()
            if spec.preserve_sparsity:
                values = values[values != 0]
            distinct = int(np.unique(values).size)
            return distinct if distinct <= spec.number_of_clusters else None
    return None


def cluster(model, spec: ClusterSpec, finetune: FinetuneSpec, data: Dataset,
            history: dict[str, list[float]] | None = None, notes: list[str] | None = None):
    """Cluster a copy of ``model``'s kernels, fine-tune, strip the wrappers.

    Returns ``(stripped model, unique values per kernel, history)``; ``history`` gets
    ``cluster.<metric>`` per epoch of ``spec.epochs``; ``notes`` (if given) gets a line per
    layer left as it is (and frozen while the others fine-tune) because its kernel already
    has no more values than clusters (after deep pruning, say). With ``spec.fold_batchnorm``
    each foldable BatchNormalization is folded into the kernel before it first
    (:mod:`.fold`) and stays frozen in the model returned, so that later fine-tuning (QAT)
    cannot bring a per-channel scale back.
    """
    k = keras_env.keras()
    tfmot = keras_env.tfmot()
    history = {} if history is None else history
    notes = [] if notes is None else notes
    if spec.fold_batchnorm:
        from .fold import fold_batchnorm

        work, pairs = fold_batchnorm(model)
        if pairs:
            notes.append(f"cluster: {len(pairs)} BatchNormalization layer(s) folded into the kernel "
                         f"before them and frozen ({', '.join(f'{b} into {a}' for a, b in pairs)}), so "
                         f"that the clustered values are the values the file holds")
    else:
        work = k.models.clone_model(model)
        work.set_weights(model.get_weights())
        pairs = []
    folded = {b for _, b in pairs}
    params = dict(number_of_clusters=spec.number_of_clusters, cluster_centroids_init=_init(spec),
                  preserve_sparsity=spec.preserve_sparsity)

    frozen: list[str] = []

    def wrap(layer):
        if not layer.weights or layer.name in folded:    # a folded BatchNormalization stays frozen
            return layer
        distinct = _already_clustered(layer, spec)
        if distinct is not None:
            layer.trainable = False       # fine-tuning must not add values back
            frozen.append(layer.name)
            notes.append(f"{layer.name}: not clustered: its kernel already has {distinct} distinct "
                         f"{'non-zero ' if spec.preserve_sparsity else ''}values, no more than "
                         f"number_of_clusters = {spec.number_of_clusters}")
            return layer
        return tfmot.clustering.keras.cluster_weights(layer, **params)

    try:
        wrapped = k.models.clone_model(work, clone_function=wrap)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"tfmot cannot cluster this model: {str(exc).splitlines()[0]}",
                          where="recipe.cluster",
                          expected="a model of layers tfmot's clustering registry supports "
                                   "(Conv, Dense, DepthwiseConv2D, BatchNormalization, pooling ...)",
                          fix="remove [cluster] from the recipe, or replace the layer named") from None
    training.fit(wrapped, data, epochs=spec.epochs, batch_size=finetune.batch_size,
                 learning_rate=finetune.learning_rate, phase="cluster", history=history)
    stripped = tfmot.clustering.keras.strip_clustering(wrapped)
    for name in frozen:
        stripped.get_layer(name).trainable = True
    counts = unique_values(stripped)
    return stripped, counts, history
