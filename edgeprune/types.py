"""The values that flow between the pipeline's stages (see pipeline.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test splits; x is float32 NHWC (or N x features).

    y is int class labels for a classifier, float32 targets shaped like the output for a
    regression, and a tuple of those (one per output, in the model's order) for a
    multi-output model. Arrays are in memory, or memory-mapped files when the data was
    streamed from a loader or image folders (:attr:`streamed`): then Keras reads them in
    batches (:meth:`batches`) and nothing loads a whole split at once.
    """

    x_train: np.ndarray
    y_train: Any
    x_val: np.ndarray
    y_val: Any
    x_test: np.ndarray
    y_test: Any
    num_classes: int
    source: str
    sha256: str
    task: Any = None                 # edgeprune.tasks.Task; None: a classifier (as before tasks)
    settings: dict = field(default_factory=dict)    # how the data was read, for the report
    keepalive: tuple = field(default=(), compare=False, repr=False)  # spill folders of streamed data

    def representative(self, count: int) -> np.ndarray:
        """The first ``count`` training samples: the calibration set for int8, in a fixed order."""
        return np.asarray(self.x_train[:count])

    @property
    def streamed(self) -> bool:
        return isinstance(self.x_train, np.memmap)

    def targets(self, split: str) -> list[np.ndarray]:
        """The ``split``'s targets as a list, one array per model output."""
        y = getattr(self, f"y_{split}")
        return list(y) if isinstance(y, (tuple, list)) else [y]

    def batches(self, split: str, batch_size: int) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """``(x, [y per output])`` in order, ``batch_size`` samples at a time (the last may be short)."""
        x, ys = getattr(self, f"x_{split}"), self.targets(split)
        for start in range(0, len(x), batch_size):
            stop = start + batch_size
            yield np.asarray(x[start:stop]), [np.asarray(y[start:stop]) for y in ys]


@dataclass
class SourceModel:
    """A loaded tf_keras model and where it came from."""

    model: Any                       # tf_keras.Model
    input_shape: tuple[int, ...]     # without the batch dimension
    num_classes: int
    origin: str                      # a path, or "models/<name>"
    sha256: str                      # of the file (or directory contents) it was loaded from
    trained_here: bool = False       # True when a reference model was trained (not cached)
    kind: str = "tf_keras"           # "tf_keras" | "keras3" (rebuilt in tf_keras, or converted as is)
    bridge: Any = None               # keras3: the bridge that proved parity and writes the result back


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


@dataclass(frozen=True)
class OutputSignature:
    """One output of a model, as far as the file tells without running it."""

    name: str
    shape: tuple[int | None, ...]        # per sample, without the batch dimension
    probabilities: bool | None = None    # ends in a softmax over its last axis; None: unknown
    saved_loss: str | None = None        # the loss the file was compiled with, if it says


@dataclass(frozen=True)
class ModelSignature:
    """A model's input and outputs: what the data is checked against and the task read from."""

    input_shape: tuple[int, ...]         # without the batch dimension
    input_dtype: str                     # "float32", "int32", ...
    outputs: tuple[OutputSignature, ...]
