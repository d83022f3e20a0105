"""check_compatibility: the rules a target without a compiler here (Edge TPU) is checked by."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeprune import keras_env
from edgeprune.compat import check_compatibility, rules_only_note
from edgeprune.targets import Compatibility, load_target


def _convert(path: Path, layers, *, input_shape=(8, 8, 1), quantize=True, int8_io=True) -> Path:
    keras, tf = keras_env.keras(), keras_env.tf()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(input_shape), *layers])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        def representative():
            rng = np.random.default_rng(0)
            for _ in range(8):
                yield [rng.random((1, 8, 8, 1), dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def _cnn():
    keras = keras_env.keras()
    return [keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"), keras.layers.Dense(10, name="logits")]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    keras, tf = keras_env.keras(), keras_env.tf()
    d = tmp_path_factory.mktemp("compat")
    tile = keras.layers.Lambda(lambda x: tf.tile(x, [1, 2, 1, 1]), name="tile_rows")
    return {
        "int8": _convert(d / "int8.tflite", _cnn()),
        "float": _convert(d / "float.tflite", _cnn(), quantize=False),
        "float_io": _convert(d / "float_io.tflite", _cnn(), int8_io=False),
        "tile": _convert(d / "tile.tflite", [keras.layers.Conv2D(4, 3, name="conv"), tile,
                                             keras.layers.Flatten(), keras.layers.Dense(10)]),
        "dynamic": _convert(d / "dynamic.tflite",
                            [keras.layers.Conv2D(4, 3, name="conv"),
                             keras.layers.GlobalAveragePooling2D(name="pool")],
                            input_shape=(None, None, 1), quantize=False),
    }


@pytest.fixture(scope="module")
def edgetpu() -> Compatibility:
    rules = load_target("coral-edgetpu").compatibility
    assert rules is not None and "CONV_2D" in rules.supported_ops
    return rules


def test_check_compatibility_is_empty_when_model_is_full_int8(models, edgetpu):
    assert check_compatibility(models["int8"], edgetpu) == []


def test_check_compatibility_reports_float_compute_and_io_when_model_is_float(models, edgetpu):
    violations = check_compatibility(models["float"], edgetpu)
    assert any(v.startswith("not full int8") and "CONV_2D" in v and "conv" in v for v in violations)
    assert any(v.startswith("input 0") and "float32" in v and "int8_io" in v for v in violations)
    assert any(v.startswith("output 0") and "float32" in v for v in violations)


def test_check_compatibility_reports_io_and_dequantize_when_int8_model_keeps_float_io(
        models, edgetpu):
    """Compute stays int8; the float I/O adds QUANTIZE (on the Edge TPU list) at the input
    and DEQUANTIZE (not on it: it runs on the CPU) at the output."""
    violations = check_compatibility(models["float_io"], edgetpu)
    assert len(violations) == 3, violations
    assert violations[0].startswith("input 0") and violations[1].startswith("output 0")
    assert violations[2].startswith("unsupported op(s) DEQUANTIZE")
    relaxed = edgetpu.model_copy(update={"requires_int8_io": False})
    assert check_compatibility(models["float_io"], relaxed) == violations[2:]


def test_check_compatibility_names_op_and_layer_when_op_is_unsupported(models, edgetpu):
    violations = check_compatibility(models["tile"], edgetpu)
    assert len(violations) == 1, violations
    assert "unsupported op(s) TILE" in violations[0] and "tile_rows" in violations[0]
    assert check_compatibility(models["tile"], edgetpu.model_copy(update={"supported_ops": ()})) == []


def test_check_compatibility_reports_dynamic_shapes_when_static_required(models):
    rules = Compatibility(requires_full_int8=False, requires_int8_io=False, static_shapes=True)
    violations = check_compatibility(models["dynamic"], rules)
    assert len(violations) == 1 and "dynamic dimension" in violations[0], violations
    assert "-1" in violations[0]
    assert check_compatibility(models["dynamic"], rules.model_copy(update={"static_shapes": False})) == []
    assert check_compatibility(models["int8"], rules) == []     # batch -1 alone is fine


def test_rules_only_note_says_the_compiler_is_not_available(edgetpu):
    note = rules_only_note(edgetpu, "the Edge TPU")
    assert "compiler is not available here" in note and "Edge TPU" in note
    assert edgetpu.note in note
