"""The TFLite converter settings for each precision, in one place for both processes that
convert (edgeprune itself, with tf_keras, and the Keras 3 worker): no keras_env import.

    float32  no optimisation
    dynamic  int8 weights, float activations (dynamic range)
    float16  float16 weights
    int8     full integer, calibrated on the representative set; int8 input and
             output tensors when ``int8_io`` is set; weights quantized per output
             channel (the converter's default) or, with ``per_channel=False``, one
             scale per tensor (fewer quantization parameters, and a clustered layer
             keeps as few distinct int8 values as it has clusters: a smaller gzip)
"""

from __future__ import annotations

import numpy as np

PRECISIONS = ("float32", "dynamic", "float16", "int8")


def configure(converter, tf, precision: str, *, representative: np.ndarray | None, int8_io: bool,
              sparse: bool, quantization_aware: bool, input_dtype=None,
              per_channel: bool = True) -> None:
    """Set ``converter`` up for ``precision``; calibration samples are fed one at a time in
    the model input's dtype (``input_dtype``; token ids stay integers)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    optimizations = []
    if precision != "float32" or quantization_aware:
        optimizations.append(tf.lite.Optimize.DEFAULT)
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if representative is None and not quantization_aware:
            raise ValueError("int8 export needs a representative dataset")
        if representative is not None:
            dtype = np.dtype(getattr(input_dtype, "as_numpy_dtype", input_dtype) or np.float32)
            samples = np.asarray(representative).astype(dtype)

            def calibration():
                for i in range(len(samples)):
                    yield [samples[i:i + 1]]

            converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not per_channel:
            # The converter's own switch (TF 2.x lite.py); it has no public name yet.
            converter._experimental_disable_per_channel = True
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
