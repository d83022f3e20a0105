"""TFLite export with the TFLite converter, one precision per call (the settings per
precision are in :mod:`.tflite_settings`).

``sparse=True`` adds the converter's sparsity optimisation, which stores
sufficiently sparse weights in the TFLite sparse encoding.
"""

from __future__ import annotations

import numpy as np

from .. import keras_env
from ..errors import UnsupportedError
from .tflite_settings import PRECISIONS, configure  # noqa: F401  (PRECISIONS: part of this API)


def to_tflite(model, precision: str, *, representative: np.ndarray | None = None,
              int8_io: bool = False, sparse: bool = False, quantization_aware: bool = False) -> bytes:
    if hasattr(model, "to_tflite"):  # a Keras 3 model converted as it is, in the Keras 3 worker
        return model.to_tflite(precision, representative=representative, int8_io=int8_io, sparse=sparse)
    tf = keras_env.tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    configure(converter, tf, precision, representative=representative, int8_io=int8_io, sparse=sparse,
              quantization_aware=quantization_aware, input_dtype=model.inputs[0].dtype)
    try:
        return converter.convert()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(f"the TFLite converter failed for {precision}: {first}",
                               where="export.tflite",
                               fix="the model uses an op without a TFLite builtin at this precision; "
                                   "drop that precision from recipe.quantize or change the layer") from None
