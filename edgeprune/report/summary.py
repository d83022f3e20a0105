"""The report's ``model`` and ``data`` sections, and notes about the task's budgets."""

from __future__ import annotations

from ..targets import TargetProfile
from ..types import Dataset, SourceModel


def model_summary(source: SourceModel, data: Dataset) -> dict:
    out = {"source": source.origin, "sha256": source.sha256, "input_shape": list(source.input_shape),
           "num_classes": source.num_classes or None, "parameters": int(source.model.count_params()),
           "task": data.task.describe()}
    if source.bridge is not None:
        out["keras3"] = source.bridge.describe()
    return out


def data_summary(data: Dataset) -> dict:
    return {"source": data.source, "sha256": data.sha256, "train_samples": len(data.x_train),
            "test_samples": len(data.x_test), "settings": data.settings}


def task_notes(profile: TargetProfile, data: Dataset) -> list[str]:
    from ..tasks.budget import budget_notes

    return budget_notes(profile.budgets, data.task, profile.name)
