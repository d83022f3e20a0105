"""ONNX export: float32 through tf2onnx, int8 through onnxruntime's static QDQ quantizer.

The same model gives the same bytes in any process: tf2onnx numbers the nodes it
inserts from a process-wide counter (:func:`renumber_generated_names`), and it folds
BatchNormalization into the convolution before it in the order of a Python ``set`` of
tensor names, which changes with each process's string hashing; when two folded
constants are equal (a residual model's zero biases, for instance) it keeps whichever
it met first, under that one's name (:func:`canonical_initializers` renames them all
from the graph).

int8 settings (``recipe.onnx_quant``): per-channel weights, MinMax calibration, and 7-bit
weights (``reduce_range``) by default, because onnxruntime's int8 kernels on x86 CPUs
without AVX-VNNI sum pairs of u8 x s8 products in 16 bits, which saturate with
8-bit weights: the file is right and the kernels compute something else. 7-bit weights
give the same outputs on every CPU (measured: DS-CNN, x86 vs an emulated Cortex-A76).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from .. import keras_env
from ..errors import UnsupportedError
from ..interrupt import call_interruptibly

OPSET = 17


def to_onnx_float(model, input_shape: tuple[int, ...], path: Path, opset: int = OPSET) -> dict:
    """Write ``path``; returns the settings that made it (opset, converter version)."""
    if hasattr(model, "to_onnx"):  # a Keras 3 model converted as it is, in the Keras 3 worker
        import onnx

        settings = model.to_onnx(path, opset)
        proto = onnx.load(str(path))
        proto.producer_name = "edgeprune"
        renumber_generated_names(proto.graph)
        path.write_bytes(proto.SerializeToString())
        return settings
    tf = keras_env.tf()
    import tf2onnx

    spec = (tf.TensorSpec((None, *input_shape), tf.float32, name="input"),)
    try:
        proto, _ = call_interruptibly(tf2onnx.convert.from_keras, model, input_signature=spec, opset=opset)
    except Exception as exc:
        raise UnsupportedError(f"tf2onnx could not convert the model: {str(exc).splitlines()[0]}",
                               where="export.onnx",
                               fix="remove \"onnx\" from recipe.formats, or replace the layer it names") from None
    proto.producer_name = "edgeprune"
    renumber_generated_names(proto.graph)
    canonical_initializers(proto.graph)
    path.write_bytes(proto.SerializeToString())
    return {"opset": opset, "converter": f"tf2onnx {tf2onnx.__version__}"}


_GENERATED = re.compile(r"__(\d+)")


def renumber_generated_names(graph) -> None:
    """Renumber the ``__N`` suffixes tf2onnx gives the nodes and symbolic dimensions it
    inserts, in order of first use.

    tf2onnx takes N from a process-wide counter, so without this the same model gives
    different bytes depending on how many conversions ran before in the process. The
    old-to-new mapping is one-to-one, so distinct names stay distinct.
    """
    mapping: dict[str, str] = {}

    def new(match):
        return "__" + mapping.setdefault(match.group(1), str(len(mapping) + 1))

    def fix(name: str) -> str:
        return _GENERATED.sub(new, name)

    for node in graph.node:
        node.name = fix(node.name)
        node.input[:] = [fix(n) for n in node.input]
        node.output[:] = [fix(n) for n in node.output]
    for item in graph.initializer:
        item.name = fix(item.name)
    for info in (*graph.input, *graph.output, *graph.value_info):
        info.name = fix(info.name)
        if info.type.HasField("tensor_type"):
            for dim in info.type.tensor_type.shape.dim:
                if dim.HasField("dim_param"):
                    dim.dim_param = fix(dim.dim_param)


def canonical_initializers(graph) -> None:
    """Name every initializer after its first use (``NODE/input_K``: the first node that
    reads it and the input slot), and order the initializers by first use.

    tf2onnx merges equal constants and keeps the name of the one it met first, which
    depends on the process (see the module docstring); the graph around them is the same.
    The merged constant may then be read once or many times (a convolution's zero bias and
    a BatchNormalization's zero shift, merged before the BatchNormalization is folded
    away), so every name is remade, not only shared ones: the bytes then depend on the
    graph alone. Layer names stay in the node names."""
    first_use, _ = _uses(graph)
    outputs = {o.name for o in graph.output}
    rename = {}
    for item in graph.initializer:
        if item.name in first_use and item.name not in outputs:
            i, k = first_use[item.name]
            rename[item.name] = f"{graph.node[i].name}/input_{k}"
    if rename:
        for node in graph.node:
            node.input[:] = [rename.get(n, n) for n in node.input]
        for item in graph.initializer:
            item.name = rename.get(item.name, item.name)
        for info in (*graph.value_info, *graph.input):
            info.name = rename.get(info.name, info.name)
        first_use, _ = _uses(graph)
    never = (len(graph.node), 0)
    ordered = sorted(graph.initializer, key=lambda t: (first_use.get(t.name, never), t.name))
    copies = []
    for original in ordered:
        copy = type(original)()
        copy.CopyFrom(original)
        copies.append(copy)
    del graph.initializer[:]
    graph.initializer.extend(copies)


def _uses(graph) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Each tensor name's first reader (node index, input slot) and its number of reads."""
    first_use: dict[str, tuple[int, int]] = {}
    users: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for k, name in enumerate(node.input):
            first_use.setdefault(name, (i, k))
            users[name] = users.get(name, 0) + 1
    return first_use, users


class _Calibration:
    """onnxruntime's CalibrationDataReader: one sample per call, then None."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self._it = iter(samples.astype(np.float32))
        self._name = input_name

    def get_next(self):
        sample = next(self._it, None)
        return None if sample is None else {self._name: sample[None, ...]}

    def rewind(self):  # pragma: no cover - not used by MinMax
        raise NotImplementedError


_CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def to_onnx_int8(float_path: Path, path: Path, representative: np.ndarray, quant=None) -> dict:
    """Static QDQ int8 calibrated on ``representative``; ``quant`` is the recipe's
    :class:`~edgeprune.recipe.OnnxQuantSpec` (default: per-channel, 7-bit weights, MinMax)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..recipe import OnnxQuantSpec

    quant = quant or OnnxQuantSpec()
    method = _CALIBRATION[quant.calibration]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=False)
        input_name = onnx.load(str(pre)).graph.input[0].name
        try:
            quantize_static(str(pre), str(path), _Calibration(input_name, representative),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=quant.per_channel,
                            reduce_range=quant.reduce_range,
                            calibrate_method=getattr(CalibrationMethod, method))
        except AssertionError as exc:  # "scale issue": a NaN range in the calibration
            raise UnsupportedError(f"the ONNX int8 quantizer found no finite scale ({exc})",
                                   where="export.onnx int8",
                                   fix="the model computes NaN on the calibration samples: check the "
                                       "data and weights for non-finite or huge values") from None
    model = onnx.load(str(path))
    canonical_initializers(model.graph)
    path.write_bytes(model.SerializeToString())
    return {"quantizer": f"onnxruntime.quantization {onnxruntime.__version__}", "format": "QDQ",
            "activations": "int8",
            "weights": ("int8, 7-bit range" if quant.reduce_range else "int8")
            + (" per-channel" if quant.per_channel else " per-tensor"),
            "calibration": method, "calibration_samples": int(len(representative))}
