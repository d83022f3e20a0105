"""TFLite export with the TFLite converter, one precision per call.

    float32  no optimisation
    dynamic  int8 weights, float activations (dynamic range)
    float16  float16 weights
    int8     full integer, calibrated on the representative set; int8 input and
             output tensors when ``int8_io`` is set

:func:`sparsify` re-encodes a converted file: sufficiently sparse weights are
stored in the TFLite sparse encoding (TensorFlow's own pass, the one the converter
runs last under ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``), applied to the bytes of
the dense file. The quantized values are the dense file's, never a second
calibration, and it costs milliseconds instead of a second conversion. The pass can
itself lose weights (an int8 fully-connected layer with fewer than 16 inputs keeps 1 to 3%
of its values: measured with 4, 8 and 12 inputs), so
``export/encoding.py`` proves every re-encoding equal to the dense file before it is kept.
"""

from __future__ import annotations

import numpy as np

from .. import keras_env
from ..errors import UnsupportedError

PRECISIONS = ("float32", "dynamic", "float16", "int8")


def to_tflite(model, precision: str, *, representative: np.ndarray | None = None,
              int8_io: bool = False, quantization_aware: bool = False) -> bytes:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    tf = keras_env.tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = []
    if precision != "float32" or quantization_aware:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    converter.optimizations = optimizations
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if representative is None and not quantization_aware:
            raise ValueError("int8 export needs a representative dataset")
        if representative is not None:
            samples = representative.astype(np.float32)

            def calibration():
                for i in range(len(samples)):
                    yield [samples[i:i + 1]]

            converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(f"the TFLite converter failed for {precision}: {first}",
                               where="export.tflite",
                               fix="the model uses an op without a TFLite builtin at this precision; "
                                   "drop that precision from recipe.quantize or change the layer") from None


def sparsify(dense: bytes) -> bytes:
    """The TFLite sparse encoding of the converted model ``dense``: the same ops and the
    same (quantized) values, with weights that are sparse enough stored as sparse tensors
    (TensorFlow's ``mlir_sparsify``, the converter's last step when sparsity is asked for)."""
    keras_env.tf()  # TensorFlow's environment first (TF_USE_LEGACY_KERAS, logging)
    from tensorflow.lite.python.convert import mlir_sparsify

    try:
        return bytes(mlir_sparsify(dense))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(f"TensorFlow's sparse re-encoding failed: {first}",
                               where="export.tflite",
                               fix='set recipe.tflite_sparse_encoding = "never"') from None
