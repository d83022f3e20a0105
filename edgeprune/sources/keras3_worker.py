"""The Keras 3 side of the bridge: a child process that loads, runs, converts and saves
Keras 3 models for edgeprune, which runs tf_keras (the two cannot share a process).

Started by :mod:`edgeprune.sources.keras3` as ``python -m edgeprune.sources.keras3_worker
FD`` with ``TF_USE_LEGACY_KERAS`` unset and ``KERAS_BACKEND=tensorflow``. It reads one JSON
request per line on stdin and writes one JSON reply per line to file descriptor FD; its
own stdout and stderr (TensorFlow's chatter) go to a log file the parent names. Arrays
travel as ``.npy``/``.npz`` files in a folder the parent owns. Models load with
``safe_mode=True``, after the parent has scanned their config.

Requests (``op``): ``load`` (path) -> signature and a weights dump; ``predict``;
``save`` (the original config with new widths and weights, saved and reloaded);
``tflite`` (one precision with the TFLite converter); ``onnx`` (tf2onnx); ``quit``.
This module must not import edgeprune's keras_env (which selects tf_keras).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import zipfile

MODELS: dict = {}


def _keras():
    import keras

    return keras


def _layers(model, prefix=""):
    for layer in model.layers:
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):
            yield from _layers(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


def _softmax(layer) -> bool:
    if type(layer).__name__ == "Softmax":
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def op_load(req):
    import numpy as np

    keras = _keras()
    model = keras.models.load_model(req["path"], compile=False, safe_mode=True)
    MODELS[req["path"]] = model
    outputs = []
    for tensor in model.outputs:
        layer = tensor._keras_history.operation
        outputs.append({"name": layer.name, "shape": list(tensor.shape[1:]), "softmax": _softmax(layer)})
    inputs = [{"name": t._keras_history.operation.name, "shape": list(t.shape[1:]),
               "dtype": str(t.dtype)} for t in model.inputs]
    arrays, layers = {}, []
    for path, layer in _layers(model):
        keys = []
        for value in layer.get_weights():
            keys.append(f"w{len(arrays)}")
            arrays[keys[-1]] = value
        layers.append([path, keys])
    np.savez(req["weights"], **arrays)
    return {"keras": keras.__version__, "inputs": inputs, "outputs": outputs, "layers": layers,
            "params": int(model.count_params())}


def _predict(model, x_path, out_path, batch_size=256):
    import numpy as np

    keras = _keras()
    x = np.load(x_path, allow_pickle=False).astype(model.inputs[0].dtype)
    out = keras.tree.flatten(model.predict(x, batch_size=batch_size, verbose=0))
    np.savez(out_path, **{f"o{i}": np.asarray(o, np.float32) for i, o in enumerate(out)})


def op_predict(req):
    _predict(MODELS[req["path"]], req["x"], req["out"], req.get("batch_size", 256))
    return {}


def op_save(req):
    """The original Keras 3 config, with each layer's new ``widths`` (channel pruning), and
    the given weights per layer path; saved, reloaded in safe mode and run on ``x``."""
    import numpy as np

    keras = _keras()
    with zipfile.ZipFile(req["path"]) as zf:
        config = json.loads(zf.read("config.json"))
    config.pop("compile_config", None)
    _update(config, req.get("widths", {}))
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    weights = np.load(req["weights"], allow_pickle=False)
    given = {path: [weights[k] for k in keys] for path, keys in req["layers"]}
    for path, layer in _layers(model):
        if layer.weights:
            layer.set_weights(given[path])
    model.save(req["out"])
    reloaded = keras.models.load_model(req["out"], compile=False, safe_mode=True)
    _predict(reloaded, req["x"], req["pred"])
    return {"keras": keras.__version__}


def _update(node, widths):
    if isinstance(node, dict):
        node.pop("build_config", None)
        cfg = node.get("config")
        if isinstance(cfg, dict) and cfg.get("name") in widths and "class_name" in node:
            cfg.update(widths[cfg["name"]])
        for value in node.values():
            _update(value, widths)
    elif isinstance(node, list):
        for value in node:
            _update(value, widths)


def op_tflite(req):
    import numpy as np
    import tensorflow as tf

    from ..export.tflite_settings import configure

    model = MODELS[req["path"]]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    rep = np.load(req["representative"], allow_pickle=False) if req.get("representative") else None
    configure(converter, tf, req["precision"], representative=rep, int8_io=req.get("int8_io", False),
              sparse=req.get("sparse", False), quantization_aware=False,
              input_dtype=model.inputs[0].dtype, per_channel=req.get("per_channel", True))
    with open(req["out"], "wb") as fh:
        fh.write(converter.convert())
    return {}


def op_onnx(req):
    import tensorflow as tf
    import tf2onnx

    model = MODELS[req["path"]]
    spec = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name="input") for t in model.inputs]
    fn = tf.function(lambda x: model(x, training=False))
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=req["opset"])
    names = [t._keras_history.operation.name for t in model.outputs]
    renames = dict(zip([o.name for o in proto.graph.output], names))
    for node in proto.graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
    for out in proto.graph.output:
        out.name = renames.get(out.name, out.name)
    with open(req["out"], "wb") as fh:
        fh.write(proto.SerializeToString())
    return {"converter": f"tf2onnx {tf2onnx.__version__}"}


OPS = {"load": op_load, "predict": op_predict, "save": op_save, "tflite": op_tflite, "onnx": op_onnx}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    replies = os.fdopen(int(argv[0]), "w", buffering=1)
    os.dup2(2, 1)  # library prints go to the log, never into the replies
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "quit":
            break
        try:
            reply = {"ok": True, **OPS[req["op"]](req)}
        except Exception as exc:  # reported as data: the parent decides what it means
            reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:2000]}",
                     "trace": traceback.format_exc()[-3000:]}
        replies.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
