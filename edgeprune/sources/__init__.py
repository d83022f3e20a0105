"""Where a model comes from, picked by what the file is: :func:`load_source` and
:func:`load_inputs` (the model and its data together, since each is checked against the
other before any work).

- a tf_keras ``.keras``/``.h5`` file or SavedModel directory: :mod:`edgeprune.source`;
- a ``.keras`` file saved by Keras 3: the bridge in :mod:`.keras3`;
- a ``.tflite`` or ``.onnx`` file made elsewhere (``edgeprune validate``): :mod:`.external`.

Importing this package must stay light: the Keras 3 worker process imports it too, and
must never import edgeprune's keras_env (which selects tf_keras).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any


def model_kind(path: Path) -> str:
    """``"keras3"``, ``"external"`` (.tflite/.onnx) or ``"tf_keras"`` (everything else)."""
    if path.suffix in (".tflite", ".onnx"):
        return "external"
    from .keras3 import is_keras3_file

    return "keras3" if is_keras3_file(path) else "tf_keras"


def load_source(model: str | Path, log=lambda msg: None):
    """A tf_keras model file as a SourceModel with its signature (see :func:`load_inputs` for
    Keras 3 files, which need the test inputs to prove the rebuild)."""
    from ..source import load_model_file
    from .signature import keras_signature, saved_loss

    source = load_model_file(model)
    return source, keras_signature(source.model, saved_loss(Path(model)))


def load_inputs(model: str | Path, data: Any, recipe, *, custom=None, log=lambda msg: None):
    """The model and its data set, each checked against the other, the task inferred."""
    from ..datasets import load_dataset

    path = Path(model)
    if model_kind(path) == "keras3":
        from .keras3 import Keras3Bridge, load_keras3

        bridge = Keras3Bridge(path, log)
        dataset = load_dataset(data, bridge.signature, recipe, custom=custom, log=log)
        return load_keras3(bridge, dataset, recipe, log), dataset
    source, signature = load_source(path, log)
    dataset = load_dataset(data, signature, recipe, custom=custom, log=log)
    return replace(source, num_classes=dataset.num_classes), dataset


def with_task(source, data, recipe, custom=None):
    """A reference model's data set with its task inferred (its loader gives int labels)."""
    from ..tasks.infer import infer_task
    from .signature import keras_signature

    signature = keras_signature(source.model)
    names = ["y_train"] if len(signature.outputs) == 1 else [f"y_train/{o.name}" for o in signature.outputs]
    task = infer_task(signature.outputs, data.targets("train"), recipe.task, source.origin, names, custom)
    return replace(data, task=task, num_classes=task.num_classes)
