"""Finite numbers: weights and activations every exporter and quantizer can represent.

A NaN or infinite weight, or an activation that overflows float32, does not stop
the converters: TFLite writes a model that computes NaN and the ONNX int8
quantizer fails an assertion. So the numbers are checked where they can go
wrong, and the failure names the layer:

- weights after loading a model, and after every training phase;
- weights that the float16 export would turn into infinity (|w| > 65504);
- every layer's output on the calibration and test samples before export. The
  limit is the int8 quantizers': each calibrated tensor's range (max - min, zero
  included) must be a finite float32 (at most 3.4e38), so that its scale,
  range / 255, is a finite float32. Inputs beyond +-1.7e38 always break it;
  inputs near 1e38 break it as soon as a layer sums a few of them.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, InputError

FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def non_finite_weight(model) -> str | None:
    """``"layer/weight: N of M values are NaN or infinite"`` for the first such weight, or None."""
    for layer in _leaf_layers(model):
        for weight in layer.weights:
            values = np.asarray(weight.numpy())
            if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                bad = int(np.count_nonzero(~np.isfinite(values)))
                return f"{layer.name}/{_short(weight)}: {bad} of {values.size} values are NaN or infinite"
    return None


def check_loaded_weights(model, where: str) -> None:
    problem = non_finite_weight(model)
    if problem:
        raise InputError(f"the model's weights are not finite ({problem})", where=where,
                         expected="finite weights", fix="re-train or re-save the model; check the "
                         "training run that produced it for a diverged loss")


def check_trained_weights(model, phase: str, learning_rate: float) -> None:
    """After a training phase: a NaN or infinity means the phase diverged."""
    problem = non_finite_weight(model)
    if problem:
        raise ConfigError(f"training diverged in phase {phase!r}: the weights are no longer "
                          f"finite ({problem})", where="recipe.finetune.learning_rate",
                          expected=f"a learning rate small enough for this model and data "
                                   f"(it was {learning_rate:g})",
                          fix="lower finetune.learning_rate, or scale the data to a range near [-1, 1]")


def check_numbers(model, data, recipe, where: str) -> None:
    """Before training and before export: weights finite (and within float16's range when the
    recipe exports float16), and every layer's output on the calibration and test samples
    finite with a finite float32 range. A model run elsewhere (a Keras 3 model kept as it is,
    in its own process) shows only its outputs: those are checked."""
    samples = {"calibration": data.representative(recipe.representative_samples), "test": data.x_test}
    if not hasattr(model, "weights"):
        for label, x in samples.items():
            seen = _Range()
            out = model.predict(x)
            for values in out if isinstance(out, (list, tuple)) else [out]:
                seen.add(np.asarray(values))
            seen.check("the model's output", label, where)
        return
    problem = non_finite_weight(model)
    if problem:
        raise InputError(f"the weights are not finite ({problem})", where=where,
                         fix="lower finetune.learning_rate, or re-train the model")
    if "float16" in recipe.quantize:
        _check_float16(model, where)
    for label, x in samples.items():
        _check_activations(model, x, label, where)


def _check_float16(model, where: str) -> None:
    for layer in _leaf_layers(model):
        for weight in layer.weights:
            values = np.asarray(weight.numpy())
            peak = float(np.max(np.abs(values))) if values.size else 0.0
            if values.dtype.kind == "f" and peak > FLOAT16_MAX:
                raise ConfigError(f"weight {layer.name}/{_short(weight)} reaches {peak:.3g}, beyond "
                                  f"float16's largest value ({FLOAT16_MAX:g}): the float16 model "
                                  "would hold infinities", where=f"{where}: recipe.quantize",
                                  expected=f"|weights| <= {FLOAT16_MAX:g} for float16",
                                  fix='drop "float16" from recipe.quantize, or re-train with '
                                      "weight regularization")


def _check_activations(model, x: np.ndarray, label: str, where: str) -> None:
    stats = {"the input": _Range()}
    stats["the input"].add(np.asarray(x, np.float32))
    for name, values in _layer_outputs(model, x):
        stats.setdefault(f"layer {name!r}", _Range()).add(values)
    for what, seen in stats.items():
        seen.check(what, label, where)


class _Range:
    """Running minimum, maximum and count of non-finite values of one tensor over batches."""

    def __init__(self):
        self.low, self.high, self.bad = 0.0, 0.0, 0   # zero is always in a quantized range

    def add(self, values: np.ndarray) -> None:
        if values.dtype.kind != "f" or values.size == 0:
            return
        finite = np.isfinite(values)
        self.bad += int(values.size - np.count_nonzero(finite))
        if self.bad == 0:
            self.low = min(self.low, float(np.min(values)))
            self.high = max(self.high, float(np.max(values)))

    def check(self, what: str, label: str, where: str) -> None:
        fix = "scale the input data to a range near [-1, 1] (or [0, 1]) and export again"
        if self.bad:
            raise InputError(f"{what} computes {self.bad} NaN or infinite values on the {label} samples "
                             "(float32 overflow)", where=where,
                             expected="finite activations: inputs and weights whose products stay "
                                      f"within float32 (|value| <= {FLOAT32_MAX:.3g})", fix=fix)
        with np.errstate(over="ignore"):
            span = np.float32(self.high) - np.float32(self.low)
        if not np.isfinite(span):
            raise InputError(f"{what} spans [{self.low:.3g}, {self.high:.3g}] on the {label} samples: its "
                             "range overflows float32, so no int8 scale can represent it", where=where,
                             expected=f"a range (max - min) of at most {FLOAT32_MAX:.3g}", fix=fix)


def _layer_outputs(model, x: np.ndarray, batch: int = 256):
    """(layer name, output on a batch of x) for every top-level layer, batch by batch; the
    model's output alone when the graph cannot be tapped layer by layer (shared layers).
    Eager calls: no graph is traced."""
    from . import keras_env

    keras = keras_env.keras()
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    try:
        tap = keras.Model(model.inputs, [layer.output for layer in layers])
    except (AttributeError, ValueError):
        layers, tap = [model], model
    for start in range(0, len(x), batch):
        out = tap(np.asarray(x[start:start + batch], np.float32), training=False)
        for layer, values in zip(layers, out if isinstance(out, (list, tuple)) else [out]):
            yield layer.name, np.asarray(values)


def _leaf_layers(model):
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers"):
            yield from _leaf_layers(layer)
        else:
            yield layer
    if not getattr(model, "layers", None):
        yield model


def _short(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]
