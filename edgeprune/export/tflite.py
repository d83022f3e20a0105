"""TFLite export with the TFLite converter, one precision per call (the settings per
precision are in :mod:`.tflite_settings`).

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
from ..interrupt import call_interruptibly

from .tflite_settings import configure


def to_tflite(model, precision: str, *, representative: np.ndarray | None = None,
              int8_io: bool = False, sparse: bool = False, quantization_aware: bool = False,
              per_channel: bool = True) -> bytes:
    if hasattr(model, "to_tflite"):  # a Keras 3 model converted as it is, in the Keras 3 worker
        return model.to_tflite(precision, representative=representative, int8_io=int8_io, sparse=sparse,
                               per_channel=per_channel)
    tf = keras_env.tf()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(*inference_function(model, tf))
    configure(converter, tf, precision, representative=representative, int8_io=int8_io, sparse=sparse,
              quantization_aware=quantization_aware, input_dtype=model.inputs[0].dtype,
              per_channel=per_channel)
    try:
        return call_interruptibly(converter.convert)  # a long C call: SIGTERM must not wait for it
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(f"the TFLite converter failed for {precision}: {first}",
                               where="export.tflite",
                               fix="the model uses an op without a TFLite builtin at this precision; "
                                   "drop that precision from recipe.quantize or change the layer") from None


def inference_function(model, tf):
    """The model's inference call as a concrete function (outputs keyed by their Keras names,
    which become the file's signature), and a plain module holding its variables.

    ``TFLiteConverter.from_keras_model`` saves the whole tf_keras model as a SavedModel
    first, tracing every layer's functions for Keras' metadata: 90% of a conversion's time
    on MobileNetV2 (30 s of 33 s). Converting this function gives the same graph, the same
    signature and the same outputs without that."""
    inp = model.inputs[0]
    spec = tf.TensorSpec((None, *inp.shape[1:]), inp.dtype, name=inp.name.split(":")[0])
    names = list(model.output_names)

    def serve(x):
        out = model(x, training=False)
        return dict(zip(names, out if isinstance(out, (list, tuple)) else [out]))

    holder = tf.Module()
    holder.weights = list(model.variables)  # what the SavedModel step needs to save, and no more
    return [tf.function(serve).get_concrete_function(spec)], holder


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
