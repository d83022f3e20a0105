"""Fold each BatchNormalization into the kernel before it, so clustered values survive.

The TFLite converter folds an inference-mode BatchNormalization into the Conv2D,
DepthwiseConv2D or Dense layer that feeds it: every output channel's weights are
multiplied by that channel's ``gamma / sqrt(moving_variance + epsilon)``. A kernel
clustered to 8 values before that step leaves the converter with 8 values *per
channel*: on the DS-CNN of ``benchmarks/zoo.py`` clustered to 8, the int8 file's
pointwise kernels held 87 to 98 distinct values and its depthwise kernels 99 to 171,
and gzip saw little of the clustering.

:func:`fold_batchnorm` moves that per-channel scale into the kernel (and bias) first,
and leaves the BatchNormalization as an identity scale followed by the shift
(``gamma`` 1, ``moving_mean`` 0, ``moving_variance`` with ``moving_variance + epsilon``
exactly 1 in float32, ``beta`` the folded shift). The model computes the same function
(to float32 rounding), clustering then works on the weights the file will hold, and the
converter's own folding multiplies them by exactly 1.

The BatchNormalization layers folded are frozen (``trainable = False``: Keras runs a frozen
BatchNormalization in inference mode), so fine-tuning cannot bring a per-channel scale
back. A BatchNormalization is folded only where that is exact: its input is the sole
output of a Conv2D, DepthwiseConv2D or Dense layer with a linear activation, called
once, that feeds nothing else, and it normalizes the last axis::

    >>> folded, pairs = fold_batchnorm(model)
    >>> pairs
    [("conv2d", "batch_normalization"), ...]
"""

from __future__ import annotations

import numpy as np

from .. import keras_env

_FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Dense")


def fold_batchnorm(model):
    """A copy of ``model`` with every foldable BatchNormalization folded (see the module),
    and the ``(layer, batch normalization)`` name pairs folded; ``model`` is unchanged."""
    k = keras_env.keras()
    work = k.models.clone_model(model)
    work.set_weights(model.get_weights())
    pairs = []
    for bn in work.layers:
        if type(bn).__name__ != "BatchNormalization":
            continue
        layer = _producer(bn)
        if layer is None:
            continue
        _fold(layer, bn)
        bn.trainable = False
        pairs.append((layer.name, bn.name))
    return work, pairs


def _producer(bn):
    """The Conv/Dense layer whose output only ``bn`` reads, or None when folding is not exact
    (``bn`` is a layer of a fresh clone: each of its nodes is a call in that model)."""
    nodes = bn._inbound_nodes
    if len(nodes) != 1 or not bn.center or not bn.scale:
        return None
    axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    shape = bn.input_shape
    rank = len(shape) if isinstance(shape, tuple) else None
    if rank is None or len(axis) != 1 or axis[0] not in (-1, rank - 1):
        return None
    inbound = nodes[0].inbound_layers
    layer = inbound[0] if isinstance(inbound, (list, tuple)) else inbound
    if isinstance(inbound, (list, tuple)) and len(inbound) != 1:
        return None
    if type(layer).__name__ not in _FOLDABLE:
        return None
    activation = getattr(layer, "activation", None)
    if activation is not None and getattr(activation, "__name__", "") != "linear":
        return None
    if len(layer._inbound_nodes) != 1:
        return None
    if len(layer._outbound_nodes) != 1:
        return None
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    return layer


def _fold(layer, bn) -> None:
    gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in
                              (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    scale = gamma / np.sqrt(var + bn.epsilon)
    name = type(layer).__name__
    kernel = layer.depthwise_kernel if name == "DepthwiseConv2D" else layer.kernel
    values = kernel.numpy().astype(np.float64)
    if name == "DepthwiseConv2D":     # [h, w, in, multiplier]: output channel in*multiplier + m
        values = values * scale.reshape(values.shape[2], values.shape[3])
    else:                              # [..., out]
        values = values * scale
    kernel.assign(values.astype(np.float32))
    shift = beta - mean * scale
    if layer.use_bias:
        layer.bias.assign((layer.bias.numpy().astype(np.float64) * scale).astype(np.float32))
    eps = np.float32(bn.epsilon)
    one = np.float32(1.0) - eps
    while np.float32(one + eps) > np.float32(1.0):
        one = np.nextafter(one, np.float32(0.0))
    while np.float32(one + eps) < np.float32(1.0):
        one = np.nextafter(one, np.float32(2.0))
    bn.gamma.assign(np.ones_like(gamma, dtype=np.float32))
    bn.moving_mean.assign(np.zeros_like(mean, dtype=np.float32))
    bn.moving_variance.assign(np.full_like(var, one, dtype=np.float32))
    bn.beta.assign(shift.astype(np.float32))
