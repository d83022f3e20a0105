"""A sparsity-inducing fine-tuning phase, run before pruning.

The penalty pushes weights toward zero so that the pruning that follows removes
less information:

- ``l1``: ``strength * sum |w|`` over every Conv/Dense kernel (favours unstructured zeros);
- ``l2``: ``strength * sum w**2`` (weight decay; shrinks without zeroing);
- ``group_lasso``: ``strength * sum_c sqrt(n_c) * ||w[..., c]||_2`` over the output
  channels ``c`` of every layer whose channels channel pruning may remove (not the
  layers that produce the model's outputs); it drives whole filters toward zero.

The penalty is an added loss on a working copy; the model returned is a fresh clone
without it (so later phases do not keep paying it), with the regularized weights.
Per epoch, ``history`` gets ``regularize.loss``, ``regularize.accuracy``,
``regularize.val_*`` and ``regularize.penalty`` (the penalty's value, strength included).
"""

from __future__ import annotations

from typing import Callable

from .. import keras_env
from ..recipe import FinetuneSpec, RegularizeSpec
from ..types import Dataset
from . import training

_KERNELS = {"kernel", "depthwise_kernel", "pointwise_kernel"}


def penalty_fn(kind: str) -> Callable:
    """The un-scaled penalty of one kernel tensor, as a TensorFlow function."""
    tf = keras_env.tf()

    def l1(w):
        return tf.reduce_sum(tf.abs(w))

    def l2(w):
        return tf.reduce_sum(tf.square(w))

    def group_lasso(w):
        flat = tf.reshape(w, (-1, w.shape[-1]))
        group_size = float(flat.shape[0])
        return (group_size ** 0.5) * tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(flat), 0) + 1e-12))

    return {"l1": l1, "l2": l2, "group_lasso": group_lasso}[kind]


def penalized_kernels(model, kind: str) -> list:
    """The kernel variables the penalty applies to."""
    outputs = {t.name for t in model.outputs}
    chosen = []
    for layer in model.layers:
        if kind == "group_lasso":
            if layer.__class__.__name__ not in ("Conv1D", "Conv2D", "Conv3D", "Dense",
                                                "SeparableConv2D", "SeparableConv1D"):
                continue
            if layer.output.name in outputs:
                continue
            names = ("kernel", "pointwise_kernel")
        else:
            names = _KERNELS
        for var in layer.trainable_weights:
            if var.name.split("/")[-1].split(":")[0] in names:
                chosen.append(var)
    return chosen


def regularize(model, spec: RegularizeSpec, finetune: FinetuneSpec, data: Dataset,
               history: dict[str, list[float]]):
    """Fine-tune a copy of ``model`` with the penalty; return a clean model with its weights."""
    k = keras_env.keras()
    work = k.models.clone_model(model)
    work.set_weights(model.get_weights())
    fn = penalty_fn(spec.kind)
    kernels = penalized_kernels(work, spec.kind)
    strength = float(spec.strength)

    def total_penalty():
        return strength * sum(fn(v) for v in kernels)

    work.add_loss(total_penalty)

    class _Record(k.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.setdefault("regularize.penalty", []).append(float(total_penalty()))

    training.fit(work, data, epochs=spec.epochs, batch_size=finetune.batch_size,
                 learning_rate=finetune.learning_rate, callbacks=[_Record()],
                 phase="regularize", history=history)
    clean = k.models.clone_model(model)
    clean.set_weights(work.get_weights())
    return clean
