"""Keras-side evaluation: a model's outputs on the test split and the task's metrics of
them, as report figures (the baseline and compressed stages of the pipeline)."""

from __future__ import annotations

import platform

import numpy as np

from .report.schema import ArtifactRecord, figure
from .types import Dataset


def keras_outputs(model, data: Dataset) -> list[np.ndarray]:
    """The model's outputs on the test split, one array per output (read in batches)."""
    from .datasets.keras_io import predict

    return predict(model, data.x_test, batch_size=256)


def keras_record(name: str, model, data: Dataset, reference: list[np.ndarray] | None,
                 parent: str | None, settings: dict, outputs: list[np.ndarray] | None = None) -> ArtifactRecord:
    """The task's metrics of a Keras model on the test split; ``reference`` is the baseline's
    outputs (for agreement), ``outputs`` this model's when already computed."""
    from . import keras_env

    outputs = keras_outputs(model, data) if outputs is None else outputs
    by = (f"keras {model.bridge.info['keras']} (Keras 3 process) on local {platform.machine()}"
          if hasattr(model, "bridge") else f"tf_keras {keras_env.keras().__version__} on local {platform.machine()}")
    meas = task_figures(data, outputs, reference, by)
    meas["parameters"] = figure(int(model.count_params()), "count", "count_params")
    return ArtifactRecord(name=name, format="keras", precision="float32", parent=parent,
                          settings=settings, measurements=meas)


def task_figures(data: Dataset, outputs: list[np.ndarray], reference: list[np.ndarray] | None,
                 by: str) -> dict:
    from .tasks import metric_unit

    metrics = data.task.evaluate(outputs, data.targets("test"), reference)
    return {k: figure(v, metric_unit(k), by) for k, v in metrics.items()}
