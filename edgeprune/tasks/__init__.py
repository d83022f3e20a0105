"""What a model does, in one place: the loss it is fine-tuned with and the metrics it is
validated with, per output.

A :class:`Task` holds one :class:`OutputTask` per model output, in the model's output
order: a classification output (integer labels, scores or probabilities over
``num_classes``) or a regression output (targets shaped like the output: a value, a
vector, an autoencoder's reconstruction). The task is inferred from the model and the
data by :func:`edgeprune.tasks.infer.infer_task`, or set in the recipe's ``[task]``.

Metric names in report.json: a single-output model uses the bare names (``accuracy``,
``precision_macro``, ``recall_macro``, ``f1_macro``, ``agreement``; ``mse``, ``mae``,
``max_abs_error``, ``mae_vs_baseline``); a multi-output model prefixes each with its
output's name (``label/accuracy``, ``box/mse``). A user metric (command line or Python
API only) is reported under its function's name.

    >>> task.compile(model, learning_rate=1e-3)          # fine-tuning loss per output
    >>> task.evaluate(outputs, targets, reference)       # {"accuracy": 0.97, ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

if TYPE_CHECKING:  # numpy is imported where used: `edgeprune targets` reads recipes without it
    import numpy as np

Kind = Literal["classification", "regression"]
Direction = Literal["higher", "lower"]

#: Which way each built-in metric improves.
DIRECTIONS: dict[str, Direction] = {
    "accuracy": "higher", "precision_macro": "higher", "recall_macro": "higher",
    "f1_macro": "higher", "agreement": "higher",
    "mse": "lower", "mae": "lower", "max_abs_error": "lower", "mae_vs_baseline": "lower",
}
PRIMARY: dict[str, str] = {"classification": "accuracy", "regression": "mse"}


@dataclass(frozen=True)
class OutputTask:
    """One model output and what it predicts."""

    name: str
    kind: Kind
    shape: tuple[int, ...]          # per sample, without the batch dimension
    probabilities: bool = False     # classification: the output is a softmax (else logits)
    num_classes: int = 0            # classification only
    how: str = ""                   # how the kind was decided, for the report

    def loss(self, keras):
        if self.kind == "classification":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=not self.probabilities)
        return keras.losses.MeanSquaredError()

    def keras_metric(self) -> str:
        return "accuracy" if self.kind == "classification" else "mae"

    def metrics(self, outputs: np.ndarray, targets: np.ndarray,
                reference: np.ndarray | None) -> dict[str, float]:
        import numpy as np

        from ..measure.metrics import classification_metrics, regression_metrics

        if self.kind == "classification":
            ref_top1 = None if reference is None else np.argmax(reference.reshape(len(reference), -1), 1)
            return classification_metrics(outputs, targets, self.num_classes, ref_top1)
        return regression_metrics(outputs, targets, reference)


@dataclass(frozen=True)
class CustomMetric:
    """A user's metric ``fn(y_true, y_pred) -> float`` (arrays for a single-output model,
    lists in output order otherwise), from the command line or the Python API."""

    name: str
    fn: Callable[[Any, Any], float]
    direction: Direction
    origin: str                     # "module:function", for the report


@dataclass(frozen=True)
class Task:
    outputs: tuple[OutputTask, ...]
    custom: CustomMetric | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def multi(self) -> bool:
        return len(self.outputs) > 1

    @property
    def num_classes(self) -> int:
        """The classes of the single classification output, or 0."""
        classifiers = [o for o in self.outputs if o.kind == "classification"]
        return classifiers[0].num_classes if len(classifiers) == 1 else 0

    def metric_name(self, output: OutputTask, metric: str) -> str:
        return f"{output.name}/{metric}" if self.multi else metric

    @property
    def primary(self) -> str:
        """The metric a quality budget judges unless it names another."""
        if self.custom is not None:
            return self.custom.name
        first = self.outputs[0]
        return self.metric_name(first, PRIMARY[first.kind])

    def headline(self) -> list[str]:
        """Up to three metric names for the terminal table."""
        if not self.multi and self.outputs[0].kind == "classification":
            names = ["accuracy", "f1_macro", "agreement"]
        elif not self.multi:
            names = ["mse", "mae", "max_abs_error"]
        else:
            names = [self.metric_name(o, PRIMARY[o.kind]) for o in self.outputs][:3]
        if self.custom is not None:
            names = [self.custom.name] + names[:2]
        return names

    def direction(self, metric: str) -> Direction:
        if self.custom is not None and metric == self.custom.name:
            return self.custom.direction
        return direction_of(metric)

    def compile(self, model, learning_rate: float) -> None:
        """Adam, and each output's loss (cross-entropy for classification, mean squared
        error for regression) with its Keras metric (accuracy, MAE)."""
        from .. import keras_env

        keras = keras_env.keras()
        losses = [o.loss(keras) for o in self.outputs]
        metrics = [[o.keras_metric()] for o in self.outputs]
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=losses if self.multi else losses[0],
                      metrics=metrics if self.multi else metrics[0])

    def evaluate(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                 reference: Sequence[np.ndarray] | None = None) -> dict[str, float]:
        """Every metric of every output, by report name. ``outputs``, ``targets`` and
        ``reference`` (the baseline's outputs, or None) are lists in output order."""
        out: dict[str, float] = {}
        for i, spec in enumerate(self.outputs):
            ref = None if reference is None else reference[i]
            for name, value in spec.metrics(outputs[i], targets[i], ref).items():
                out[self.metric_name(spec, name)] = value
        if self.custom is not None:
            out[self.custom.name] = custom_value(self.custom, outputs, targets, self.multi)
        return out

    def describe(self) -> dict:
        out = {"outputs": [{"name": o.name, "kind": o.kind, "shape": list(o.shape),
                            **({"num_classes": o.num_classes, "probabilities": o.probabilities}
                               if o.kind == "classification" else {}),
                            "decided_by": o.how} for o in self.outputs],
               "fine_tuning_loss": ", ".join(
                   f"{o.name}: " * self.multi + ("sparse categorical cross-entropy" if o.kind ==
                                                 "classification" else "mean squared error")
                   for o in self.outputs),
               "primary_metric": self.primary, "headline": self.headline()}
        if self.custom is not None:
            out["custom_metric"] = {"name": self.custom.name, "function": self.custom.origin,
                                    "direction": self.custom.direction}
        return out


def direction_of(metric: str) -> Direction:
    """``higher`` or ``lower`` for a built-in metric name (``out/accuracy`` included)."""
    base = metric.rsplit("/", 1)[-1]
    if base not in DIRECTIONS:
        from ..errors import ConfigError

        raise ConfigError(f"unknown metric {metric!r}", where="budgets.metric",
                          expected=f"one of {', '.join(DIRECTIONS)}, prefixed 'OUTPUT/' for a "
                                   "multi-output model, or the name of the --metric function")
    return DIRECTIONS[base]


def metric_unit(metric: str) -> str:
    base = metric.rsplit("/", 1)[-1]
    if DIRECTIONS.get(base) == "higher":
        return "fraction"
    if base == "mse":
        return "squared output units"
    return "output units" if base in DIRECTIONS else "user metric"


def custom_value(metric: CustomMetric, outputs, targets, multi: bool) -> float:
    import numpy as np

    from ..errors import InputError

    y_pred = list(outputs) if multi else outputs[0]
    y_true = list(targets) if multi else targets[0]
    try:
        value = float(metric.fn(y_true, y_pred))
    except Exception as exc:
        raise InputError(f"the metric function failed: {type(exc).__name__}: {exc}",
                         where=metric.origin,
                         expected="fn(y_true, y_pred) -> float on numpy arrays") from None
    if not np.isfinite(value):
        raise InputError(f"the metric function returned {value}", where=metric.origin,
                         expected="a finite number")
    return value


__all__ = ["Task", "OutputTask", "CustomMetric", "DIRECTIONS", "direction_of"]
