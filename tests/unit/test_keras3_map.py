"""Keras 3 configs translated to tf_keras layers: settings that are off are dropped, anything
without a faithful equivalent names the layer (no Keras 3 process needed)."""

import pytest

from edgeprune.sources.keras3 import read_config
from edgeprune.sources.keras3_map import Unmappable, build, make_layer

POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
INIT = {"module": "keras.initializers", "class_name": "GlorotUniform",
        "config": {"seed": None, "input_axes": None}, "registered_name": None}


def _dense(**extra):
    config = {"name": "d", "trainable": True, "dtype": POLICY, "units": 4, "activation": "relu",
              "use_bias": True, "kernel_initializer": INIT, "kernel_regularizer":
              {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}, "registered_name": None},
              "lora_rank": None, "quantization_config": None, **extra}
    return {"module": "keras.layers", "class_name": "Dense", "config": config, "registered_name": None, "name": "d"}


def test_make_layer_translates_a_keras3_dense(keras):
    layer = make_layer(_dense(), keras)
    assert isinstance(layer, keras.layers.Dense) and layer.units == 4 and layer.dtype == "float32"
    assert float(layer.kernel_regularizer.l2) == pytest.approx(0.01)


def test_make_layer_refuses_a_keras3_setting_that_is_on(keras):
    with pytest.raises(Unmappable, match="lora_rank = 4"):
        make_layer(_dense(lora_rank=4), keras)


def test_make_layer_refuses_an_activation_defined_differently(keras):
    entry = _dense()
    entry["config"]["activation"] = "hard_sigmoid"
    with pytest.raises(Unmappable, match="'d' .*relu6"):
        make_layer(entry, keras)


def test_build_refuses_a_keras_ops_node_by_name(keras):
    config = {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "name": "in",
         "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "in"}, "inbound_nodes": []},
        {"module": "keras.src.ops.nn", "class_name": "Relu", "name": "relu", "config": {"name": "relu"},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                      "config": {"keras_history": ["in", 0, 0]}}], "kwargs": {}}]}],
        "input_layers": ["in", 0, 0], "output_layers": ["relu", 0, 0]}}
    with pytest.raises(Unmappable, match="'relu' \\(Relu\\): a keras.ops call"):
        build(config, keras)


def test_read_config_refuses_classes_from_other_modules(tmp_path):
    import json
    import zipfile

    from edgeprune.errors import InputError

    path = tmp_path / "m.keras"
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [
        {"module": "my_layers", "class_name": "Fancy", "config": {"name": "f"}, "registered_name": "Fancy"}]}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(InputError, match="module 'my_layers'"):
        read_config(path)
