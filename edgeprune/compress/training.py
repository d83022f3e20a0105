"""Fine-tuning shared by the compression techniques: compile for a classifier, fit, record.

Every technique fine-tunes the same way (Adam, sparse categorical cross-entropy,
accuracy), so the loss is chosen once, from the model's output: logits unless the
last layer ends in a softmax.
"""

from __future__ import annotations

from typing import Any, Sequence

from .. import keras_env
from ..finite import check_trained_weights
from ..types import Dataset


def outputs_probabilities(model) -> bool:
    """True when the model's last layer applies a softmax (so the loss takes probabilities)."""
    last = model.layers[-1]
    while hasattr(last, "layer"):  # pruning, clustering or quantization wrappers
        last = last.layer
    config = last.get_config()
    activation = config.get("activation")
    if isinstance(activation, dict):  # serialized activation
        activation = activation.get("config", {}).get("name") or activation.get("class_name")
    if last.__class__.__name__ == "Softmax":
        return True
    return activation == "softmax"


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
    if epochs <= 0:
        return
    if compile_model:
        compile_classifier(model, learning_rate)
    result = model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
                       validation_data=(data.x_val, data.y_val), callbacks=list(callbacks),
                       shuffle=True, verbose=0)
    for metric, values in result.history.items():
        history.setdefault(f"{phase}.{metric}", []).extend(float(v) for v in values)
    check_trained_weights(model, phase, learning_rate)  # a diverged phase stops here, named
