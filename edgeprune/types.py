"""The values that flow between the pipeline's stages (see pipeline.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test splits; x is float32 NHWC (or N x features), y int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    sha256: str

    def representative(self, count: int) -> np.ndarray:
        """The first ``count`` training samples: the calibration set for int8, in a fixed order."""
        return self.x_train[:count]


@dataclass
class SourceModel:
    """A loaded tf_keras model and where it came from."""

    model: Any                       # tf_keras.Model
    input_shape: tuple[int, ...]     # without the batch dimension
    num_classes: int
    origin: str                      # a path, or "models/<name>"
    sha256: str                      # of the file (or directory contents) it was loaded from
    trained_here: bool = False       # True when a reference model was trained (not cached)


@dataclass
class CompressedModel:
    """The compressed, stripped tf_keras model and what made it."""

    model: Any                                   # tf_keras.Model, float, no pruning wrappers
    recipe: Any                                  # edgeprune.recipe.Recipe
    sparsity: dict[str, float] = field(default_factory=dict)       # weight name -> zero fraction
    clusters: dict[str, int] = field(default_factory=dict)         # weight name -> unique values
    history: dict[str, list[float]] = field(default_factory=dict)  # phase/metric -> per epoch
    notes: list[str] = field(default_factory=list)                 # what was left intact and why
    qat_model: Any = None            # a QAT-annotated model, when the recipe asked for QAT
    steps: list[str] = field(default_factory=list)                 # techniques applied, in order


@dataclass(frozen=True)
class Artifact:
    """A file the pipeline produced."""

    name: str                 # "int8.tflite"
    path: Path
    format: str               # "tflite" | "onnx" | "c_array"
    precision: str            # "float32" | "dynamic" | "float16" | "int8"
    encoding: str             # "dense" | "sparse" | ...
    sha256: str
    parent: str               # the name of what it was made from
    settings: dict = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size
