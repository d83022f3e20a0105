"""Fine-tuning shared by the compression techniques: compile for the task, fit, record.

Every technique fine-tunes the same way: Adam and the loss of the data's task
(:mod:`edgeprune.tasks`: cross-entropy for a classification output, mean squared error
for a regression output). Data without a task is a classifier's: sparse categorical
cross-entropy on logits unless the last layer ends in a softmax.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable, Sequence

from .. import keras_env
from ..finite import check_trained_weights
from ..types import Dataset


#: Called after every fine-tuning epoch as ``hook(phase, epoch, epochs, logs)`` when set (the
#: search stops a hopeless trial from it by raising; see edgeprune/search/pruning.py).
EPOCH_HOOK: ContextVar[Callable[[str, int, int, dict], None] | None] = ContextVar("EPOCH_HOOK", default=None)


def outputs_probabilities(model) -> bool:
    """True when the model's last layer applies a softmax (so the loss takes probabilities)."""
    from ..sources.signature import ends_in_softmax

    return ends_in_softmax(model.layers[-1])


def compile_classifier(model, learning_rate: float) -> None:
    k = keras_env.keras()
    model.compile(optimizer=k.optimizers.Adam(learning_rate),
                  loss=k.losses.SparseCategoricalCrossentropy(
                      from_logits=not outputs_probabilities(model)),
                  metrics=["accuracy"])


def fit(model, data: Dataset, *, epochs: int, batch_size: int, learning_rate: float,
        callbacks: Sequence[Any] = (), phase: str, history: dict[str, list[float]],
        compile_model: bool = True) -> None:
    """Fine-tune ``model`` on ``data`` and append its per-epoch metrics to ``history``
    under ``"<phase>.<metric>"`` (loss, accuracy, val_loss, val_accuracy). Weights that are
    no longer finite afterwards (a diverged phase) are a ConfigError naming the phase."""
    import numpy as np

    from ..datasets.keras_io import fit_arguments

    if epochs <= 0:
        return
    if compile_model:
        if data.task is not None:
            data.task.compile(model, learning_rate)
        else:
            compile_classifier(model, learning_rate)
    # Streamed data is shuffled by its own generator, seeded from numpy (seeded by the recipe).
    seed = int(np.random.randint(2 ** 31 - 1)) if data.streamed else 0
    from ..progress import keras_callbacks

    callbacks = list(callbacks) + keras_callbacks(phase)
    hook = EPOCH_HOOK.get()
    if hook is not None:
        k = keras_env.keras()
        callbacks.append(k.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: hook(phase, epoch, epochs, dict(logs or {}))))
    result = model.fit(epochs=epochs, callbacks=callbacks, verbose=0,
                       **fit_arguments(data, batch_size, seed))
    for metric, values in result.history.items():
        history.setdefault(f"{phase}.{metric}", []).extend(float(v) for v in values)
    check_trained_weights(model, phase, learning_rate)  # a diverged phase stops here, named
