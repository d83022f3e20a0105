"""ONNX export: float32 through tf2onnx, int8 through onnxruntime's static QDQ quantizer."""

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


def to_onnx_int8(float_path: Path, path: Path, representative: np.ndarray) -> dict:
    """Static QDQ int8 (per-channel weights, MinMax calibration on ``representative``)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=False)
        input_name = onnx.load(str(pre)).graph.input[0].name
        try:
            quantize_static(str(pre), str(path), _Calibration(input_name, representative),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax)
        except AssertionError as exc:  # "scale issue": a NaN range in the calibration
            raise UnsupportedError(f"the ONNX int8 quantizer found no finite scale ({exc})",
                                   where="export.onnx int8",
                                   fix="the model computes NaN on the calibration samples: check the "
                                       "data and weights for non-finite or huge values") from None
    return {"quantizer": f"onnxruntime.quantization {onnxruntime.__version__}", "format": "QDQ",
            "activations": "int8", "weights": "int8 per-channel", "calibration": "MinMax",
            "calibration_samples": int(len(representative))}
