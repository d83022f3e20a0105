"""Which task each model output performs, from the model and the data, or from the recipe.

Per output, the first of these that decides wins:

1. the recipe's ``[task]`` (``kind`` for every output, ``outputs.NAME`` for one);
2. the loss the model file was compiled with (cross-entropy: classification; squared,
   absolute, Huber, log-cosh...: regression);
3. the data, where only one reading fits: integer labels (N,) for a (k,) output, or
   one-hot rows, are classification; targets shaped like an output of rank 2 or more
   (an image), or real values for a one-value output, are regression.

Anything else — float (N, k) targets for a (k,) output (regression targets or class
scores?), soft labels for a softmax, 0/1 targets for one output unit — is an
:class:`~edgeprune.errors.InputError` naming the output and the ``[task]`` setting that
decides it. A guess is never made.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data import check_labels
from ..errors import ConfigError, InputError
from ..types import OutputSignature
from . import CustomMetric, Kind, OutputTask, Task
from .spec import TaskSpec

TASK_FIX = ('set the task in a recipe passed with --recipe FILE.toml: task = { kind = "regression" } '
            '(or "classification"); for one output of several, task = { outputs = { NAME = '
            '"regression" } }')

_REGRESSION_LOSSES = ("squared", "absolute", "huber", "log_cosh", "logcosh", "mse", "mae", "mape",
                      "msle", "cosine", "poisson")


def loss_kind(loss: str | None) -> Kind | None:
    """The kind of task a Keras loss name implies, or None when it does not say."""
    if not loss:
        return None
    name = loss.lower()
    if "crossentropy" in name or "hinge" in name or "focal" in name:
        return "classification"
    if any(key in name for key in _REGRESSION_LOSSES):
        return "regression"
    return None


def infer_task(outputs: Sequence[OutputSignature], targets: Sequence[np.ndarray], spec: TaskSpec,
               where: str, target_names: Sequence[str], custom: CustomMetric | None = None) -> Task:
    """The task of a model with ``outputs``, given each output's training targets (in the
    same order, named ``target_names`` in messages)."""
    names = [o.name for o in outputs]
    unknown = sorted(set(spec.outputs) - set(names))
    if unknown:
        raise ConfigError(f"task.outputs names outputs the model does not have: {', '.join(unknown)}",
                          where="recipe.task.outputs", expected=f"output names among: {', '.join(names)}")
    tasks = tuple(_infer_output(sig, np.asarray(y), spec.declared(sig.name), where, yname)
                  for sig, y, yname in zip(outputs, targets, target_names))
    return Task(outputs=tasks, custom=custom)


def prepare_targets(task: Task, targets: Sequence[np.ndarray], n: int, where: str,
                    target_names: Sequence[str]) -> list[np.ndarray]:
    """Each output's targets checked and converted for its task: int64 class labels (one-hot
    rows become labels), or float32 regression targets shaped (n, *output shape)."""
    out = []
    for spec, y, yname in zip(task.outputs, targets, target_names):
        if spec.kind == "classification":
            out.append(check_labels(np.asarray(y), n, yname, where, spec.num_classes))
            continue
        if not isinstance(y, np.ndarray):
            y = np.asarray(y)
        if spec.shape == (1,) and y.ndim == 1:
            y = y[:, None]
        if len(y) != n or tuple(y.shape[1:]) != spec.shape:
            raise InputError(f"{yname} has shape {y.shape} for {n} samples", where=f"{where}: {yname}",
                             expected=f"({n}, {', '.join(map(str, spec.shape))}) regression targets "
                                      f"for output {spec.name!r}")
        if y.dtype.kind not in "fiub":
            raise InputError(f"{yname} has dtype {y.dtype}", where=f"{where}: {yname}",
                             expected="numeric regression targets")
        if not isinstance(y, np.memmap):  # a streamed split stays on disk (float32 already)
            y = y.astype(np.float32)
        if not all(np.all(np.isfinite(y[i:i + 65536])) for i in range(0, len(y), 65536)):
            raise InputError(f"{yname} holds NaN or infinite values", where=f"{where}: {yname}",
                             expected="finite regression targets")
        out.append(y)
    return out


def _integer_valued(y: np.ndarray) -> bool:
    if y.dtype.kind in "iub":
        return True
    return y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))


def _one_hot(y: np.ndarray) -> bool:
    return (y.ndim == 2 and _integer_valued(y) and bool(np.all((y == 0) | (y == 1)))
            and bool(np.all(y.sum(axis=1) == 1)))


def _infer_output(sig: OutputSignature, y: np.ndarray, declared: Kind | None, where: str,
                  yname: str) -> OutputTask:
    if any(d is None for d in sig.shape):
        raise InputError(f"output {sig.name!r} has shape {sig.shape}, not fully defined", where=where,
                         expected="a static output shape apart from the batch dimension")
    shape = tuple(int(d) for d in sig.shape)
    vector = len(shape) == 1 and shape[0] >= 2
    like_output = tuple(y.shape[1:]) == shape or (shape == (1,) and y.ndim == 1)
    label = (f"targets of shape {y.shape} ({'integer' if _integer_valued(y) else 'real'} values) for "
             f"output {sig.name!r} of shape {shape}{' (softmax)' if sig.probabilities else ''}")

    def classification(how: str) -> OutputTask:
        if not vector:
            raise InputError(f"output {sig.name!r} has shape {shape}", where=where,
                             expected="(num_classes,) scores with num_classes >= 2 for classification",
                             fix='set task = { kind = "regression" } in a recipe (--recipe FILE.toml)')
        return OutputTask(sig.name, "classification", shape, bool(sig.probabilities), shape[0], how)

    def regression(how: str) -> OutputTask:
        if not like_output:
            raise InputError(f"{label}: regression targets must be shaped like the output",
                             where=f"{where}: {yname}",
                             expected=f"(N, {', '.join(map(str, shape))})")
        return OutputTask(sig.name, "regression", shape, how=how)

    if declared == "classification":
        return classification("set in the recipe")
    if declared == "regression":
        return regression("set in the recipe")
    saved = loss_kind(sig.saved_loss)
    if saved == "classification" and (y.ndim == 1 or _one_hot(y)):
        return classification(f"the file was compiled with loss {sig.saved_loss!r}")
    if saved == "regression" and like_output:
        return regression(f"the file was compiled with loss {sig.saved_loss!r}")
    if saved is not None:
        raise InputError(f"{label} does not fit the loss the file was compiled with "
                         f"({sig.saved_loss!r})", where=f"{where}: {yname}",
                         expected="labels for a classification loss, targets shaped like the "
                                  "output for a regression loss", fix=TASK_FIX)
    if vector and y.ndim == 1 and _integer_valued(y):
        return classification(f"integer labels for {shape[0]} class scores")
    if vector and tuple(y.shape[1:]) == shape and _one_hot(y):
        return classification(f"one-hot labels for {shape[0]} class scores")
    if like_output and len(shape) >= 2 and not sig.probabilities:
        return regression(f"targets shaped like the {shape} output")
    if like_output and shape == (1,):
        if _integer_valued(y) and set(np.unique(y).tolist()) <= {0, 1}:
            raise InputError(f"{label}: 0/1 targets for one output unit could be a binary "
                             "classifier or a regression", where=f"{where}: {yname}",
                             fix='set task = { kind = "regression" } in a recipe (--recipe FILE.toml); '
                                 "a binary classifier needs two output units (softmax or logits) "
                                 "with integer labels")
        return regression("one output value and real-valued targets")
    if like_output:
        raise InputError(f"{label}: these could be regression targets or class scores "
                         "(one-hot or soft labels), and the file does not say which loss it was "
                         "trained with", where=f"{where}: {yname}", fix=TASK_FIX)
    expected = (f"(N,) integer labels or (N, {shape[0]}) one-hot rows for classification, or "
                if vector else "")
    raise InputError(f"{label} fits neither classification nor regression", where=f"{where}: {yname}",
                     expected=expected + f"(N, {', '.join(map(str, shape))}) regression targets",
                     fix="check that the model and the data belong together")
