"""Fine-tuning against the source model's outputs (``finetune.distill``).

A pruned, clustered or narrowed model fine-tuned on the labels alone learns only which
class is right; the source model's outputs also say how close the others were. With
``distill`` every fine-tuning phase (pruning, clustering, QAT, regularization) minimises

    (1 - alpha) * cross-entropy(labels, student)
        + alpha * T^2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T))

(Hinton et al., 2015), the teacher being the source model as given, before any
compression. On the DS-CNN of benchmarks/zoo.py (trained to convergence, 97.2% on its 397
test samples), 90% pruning with 48 fine-tuning epochs lost 2.0 points without and 0.0
with distillation (alpha 0.7, T 4); 95% lost 7.3 and 3.5. It does not help every model:
on the reference digits CNN (1,437 training images, a teacher at 97.5%) distilled trials
lost 0.6 to 1.9 points more than the same recipes without (benchmarks/search.py).

The teacher's outputs are computed once, on the training and validation splits, and
ride with the labels: the targets Keras sees are ``[label, teacher log-probabilities]``
per sample, and the loss and the ``accuracy`` metric read them apart. So every technique
fine-tunes the distilled way without knowing it (:func:`distilled` returns the data with
those targets and a task whose ``compile`` sets the loss). A single classification output
and data in memory only: anything else is a ConfigError naming ``finetune.distill``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from ..recipe import DistillSpec
from ..types import Dataset

WHERE = "recipe.finetune.distill"


def applies(data: Dataset) -> bool:
    """Whether :func:`distilled` can distil ``data``: one classification output, in memory."""
    task = data.task
    return not data.streamed and (task is None or (not task.multi and task.outputs[0].kind == "classification"))


def distilled(data: Dataset, teacher, spec: DistillSpec, batch_size: int) -> Dataset:
    """``data`` with targets ``[label, teacher log-probabilities]`` for the training and
    validation splits and a task that compiles the distillation loss."""
    from .training import outputs_probabilities

    task = data.task
    if task is not None and (task.multi or task.outputs[0].kind != "classification"):
        raise ConfigError("distillation needs a model with one classification output; this "
                          f"one has {_kinds(task)}", where=WHERE, fix="remove finetune.distill from the recipe")
    if data.streamed:
        raise ConfigError("distillation needs the data in memory; this data is streamed from disk",
                          where=WHERE, fix="remove finetune.distill from the recipe, or load the "
                                            "data as arrays (an .npz file)")
    probabilities = outputs_probabilities(teacher)
    packed = {split: _pack(getattr(data, f"y_{split}"),
                           _log_probs(teacher.predict(getattr(data, f"x_{split}"), batch_size=batch_size,
                                                      verbose=0), probabilities))
              for split in ("train", "val")}
    return replace(data, y_train=packed["train"], y_val=packed["val"],
                   task=DistillTask(spec.alpha, spec.temperature, task))


def agreement(data: Dataset) -> str:
    """A note with how often the teacher's top class is the label, on the training and
    validation splits of :func:`distilled` data. A teacher that misses labels the student
    could learn pulls it towards its mistakes: a Keras 3 CNN whose source model matched
    84.0% of its training labels lost 16.7 points distilled (75% pruning, 2 epochs) and
    gained 2.7 without."""
    rates = [float(np.mean(np.argmax(y[:, 1:], axis=1) == y[:, 0])) if len(y) else float("nan")
             for y in (data.y_train, data.y_val)]
    return (f"distillation: the source model's top class is the label for {rates[0]:.1%} of the "
            f"training samples and {rates[1]:.1%} of the validation samples; where it misses labels "
            "the fine-tuned model would learn, distillation pulls it towards those mistakes")


@dataclass(frozen=True)
class DistillTask:
    """What :func:`edgeprune.compress.training.fit` compiles a model with (it needs only
    ``compile``); the data's own task, if any, is kept as ``inner``."""

    alpha: float
    temperature: float
    inner: object = None

    def compile(self, model, learning_rate: float) -> None:
        from .. import keras_env
        from .training import outputs_probabilities

        keras, tf = keras_env.keras(), keras_env.tf()
        probabilities = outputs_probabilities(model)
        alpha, t = self.alpha, self.temperature

        def student_log_probs(y_pred):
            if probabilities:
                return tf.math.log(tf.clip_by_value(y_pred, 1e-8, 1.0))
            return tf.nn.log_softmax(y_pred)

        def distillation(y_true, y_pred):
            labels = tf.cast(y_true[:, 0], tf.int32)
            student = student_log_probs(y_pred)
            hard = -tf.gather(student, labels, batch_dims=1)
            soft_teacher = tf.nn.softmax(y_true[:, 1:] / t)
            soft_student = tf.nn.log_softmax(student / t)
            kl = tf.reduce_sum(soft_teacher * (tf.math.log(tf.clip_by_value(soft_teacher, 1e-12, 1.0))
                                               - soft_student), axis=-1)
            return (1.0 - alpha) * hard + alpha * t * t * kl

        def accuracy(y_true, y_pred):    # named so: the search watches val_accuracy
            labels = tf.cast(y_true[:, 0], tf.int64)
            return tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), labels), tf.float32)

        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=distillation,
                      metrics=[accuracy])


def _log_probs(outputs: np.ndarray, probabilities: bool) -> np.ndarray:
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if probabilities:
        return np.log(np.clip(outputs, 1e-8, 1.0))
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _pack(labels, log_probs: np.ndarray) -> np.ndarray:
    classes = log_probs.shape[1]
    if classes < 2:
        raise ConfigError("distillation needs one output unit per class (at least 2); the model "
                          "has 1", where=WHERE, fix="remove finetune.distill from the recipe")
    labels = np.asarray(labels).reshape(len(log_probs), -1)
    if labels.shape[1] != 1:
        raise ConfigError(f"distillation needs integer class labels; the targets are {labels.shape[1]} "
                          "values per sample", where=WHERE, fix="remove finetune.distill from the recipe")
    integer = labels.dtype.kind in "iub" or bool(np.all(labels == np.round(labels)))
    if not integer or labels.min() < 0 or labels.max() >= classes:
        raise ConfigError(f"distillation needs integer class labels in 0..{classes - 1}; the targets "
                          f"range over {labels.min():g}..{labels.max():g}"
                          + ("" if integer else " and are not whole numbers"),
                          where=WHERE, fix="remove finetune.distill from the recipe, or give class "
                                           "indices as labels")
    return np.concatenate([labels.astype(np.float32), log_probs.astype(np.float32)], axis=1)


def _kinds(task) -> str:
    return ", ".join(f"{o.name} ({o.kind})" for o in task.outputs)
