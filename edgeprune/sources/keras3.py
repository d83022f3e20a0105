"""The Keras 3 bridge: compress a ``.keras`` file saved by Keras 3 with the same recipes.

Keras 3 and tf_keras cannot share a process (``TF_USE_LEGACY_KERAS`` is read once, when
TensorFlow is imported), and tfmot works on tf_keras only. So:

1. the config is read from the archive here and scanned before anything is deserialised
   (no Lambda layers, no classes from modules outside keras);
2. a Keras 3 worker process (:mod:`.keras3_worker`) loads the model in safe mode and
   hands back its signature and its weights;
3. the graph is rebuilt in tf_keras layer by layer (:mod:`.keras3_map`) and the weights
   copied, and the rebuilt model must give the same outputs as Keras 3 on the test inputs
   (at most :data:`PARITY_SAMPLES`) within ``1e-4 x max(1, max |output|)`` before any work;
   a layer that cannot be mapped is an error naming it;
4. after export, the compressed model is written back as a Keras 3 ``.keras`` (the
   original config, new widths where channels were pruned, the compressed weights),
   reloaded in Keras 3 and compared with the exported float32 TFLite file.

A recipe that only quantizes (``prune = false``, no cluster, QAT or regularize) does not
need the rebuild: a model that cannot be mapped is then converted as it is, in the
worker (:class:`Keras3Model`).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError, UnsupportedError
from ..types import ModelSignature, OutputSignature

PARITY_SAMPLES = 2048
PARITY_RTOL = 1e-4        # rebuilt tf_keras vs Keras 3: the same TensorFlow kernels
WRITEBACK_RTOL = 1e-3     # written-back Keras 3 vs the float32 TFLite file: other kernels
WRITEBACK_SAMPLES = 256
UNMAPPABLE_FIX = ('quantize it as it is with a recipe that only quantizes (prune = false, and no '
                  'cluster, qat or regularize), or replace the layer with a built-in one both Keras '
                  'versions share, re-save, and export again')


def is_keras3_file(path: Path) -> bool:
    """True for a ``.keras`` archive whose metadata says Keras 3."""
    if path.suffix != ".keras" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("metadata.json")) if "metadata.json" in zf.namelist() else {}
    except (zipfile.BadZipFile, OSError, ValueError, KeyError):
        return False
    return str(meta.get("keras_version", "")).startswith("3")


def read_config(path: Path) -> dict:
    """The model config of a Keras 3 archive, scanned: Lambda layers and classes from modules
    outside keras are refused before anything is deserialised."""
    from ..source import read_keras_archive

    config, _ = read_keras_archive(path)
    _refuse_foreign_modules(config, str(path))
    return config


def _refuse_foreign_modules(config, where: str) -> None:
    def walk(node):
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and module.split(".")[0] != "keras":
                raise InputError(f"{node.get('class_name', '?')} comes from module {module!r}, which would "
                                 "run code outside Keras to load", where=where,
                                 expected="built-in Keras layers only",
                                 fix="replace the custom class with built-in layers, re-save, and export again")
            if node.get("class_name") in ("__lambda__", "Lambda"):
                raise InputError("the model holds a Python lambda, which is unsafe to deserialise",
                                 where=where, expected="built-in Keras layers only",
                                 fix="replace each Lambda layer with built-in layers, re-save, and export again")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)


# ------------------------------------------------------------------------ the worker

class Worker:
    """A Keras 3 process speaking the protocol in :mod:`.keras3_worker`."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="edgeprune-keras3-")
        self.log_path = Path(self.dir.name) / "worker.log"
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        package_root = str(Path(__file__).resolve().parents[2])
        env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p))
        read_fd, write_fd = os.pipe()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "edgeprune.sources.keras3_worker",
                                          str(write_fd)], stdin=subprocess.PIPE, stdout=log,
                                         stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env,
                                         text=True)
        os.close(write_fd)
        self.replies = os.fdopen(read_fd, "r")
        self.count = 0

    def path(self, name: str) -> str:
        self.count += 1
        return str(Path(self.dir.name) / f"{self.count}-{name}")

    def call(self, op: str, **request) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"op": op, **request}) + "\n")
            self.proc.stdin.flush()
            line = self.replies.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            tail = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
            raise RuntimeError(f"the Keras 3 worker stopped (exit {self.proc.poll()}):\n{tail}")
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.replies.close()
        self.dir.cleanup()


_WORKER: Worker | None = None


def worker() -> Worker:
    """The process-wide Keras 3 worker, started on first use (TensorFlow's import takes seconds)."""
    global _WORKER
    if _WORKER is None or not _WORKER.alive():
        _WORKER = Worker()
    return _WORKER


@atexit.register
def _stop_worker() -> None:
    if _WORKER is not None:
        _WORKER.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# ------------------------------------------------------------------------ the bridge

class Keras3Bridge:
    """One Keras 3 model file: its config, its signature, and the way back."""

    def __init__(self, path: Path, log=lambda msg: None):
        from .signature import losses_by_output

        self.path = Path(path).resolve()
        self.config = read_config(self.path)
        self.worker = worker()
        log(f"reading the Keras 3 model in a Keras 3 process ({self.path.name})")
        from .. import keras_env

        keras_env.keras()  # imported here while the worker imports Keras 3: both take seconds
        self.weights = self.worker.path("weights.npz")
        reply = self.worker.call("load", path=str(self.path), weights=self.weights)
        if not reply["ok"]:
            raise InputError(f"Keras 3 could not load the model: {_first_line(reply['error'])[:300]}",
                             where=str(path), expected="a model saved by Keras 3 with built-in layers",
                             fix="custom layers must be replaced by built-in ones; re-save the model")
        self.info = reply
        if len(reply["inputs"]) != 1:
            raise InputError(f"the model has {len(reply['inputs'])} inputs", where=str(path),
                             expected="one input")
        inp = reply["inputs"][0]
        if any(d is None for d in inp["shape"]):
            raise InputError(f"the input shape {tuple(inp['shape'])} is not fully defined", where=str(path),
                             expected="a static input shape apart from the batch dimension")
        names = [o["name"] for o in reply["outputs"]]
        losses = losses_by_output((self.config.get("compile_config") or {}).get("loss"), names)
        self.signature = ModelSignature(
            input_shape=tuple(inp["shape"]), input_dtype=inp["dtype"],
            outputs=tuple(OutputSignature(o["name"], tuple(o["shape"]), o["softmax"], losses.get(o["name"]))
                          for o in reply["outputs"]))
        self.mapped: bool | None = None
        self.unmapped_why = ""
        self.parity: dict = {}

    # -------------------------------------------------------------- load

    def rebuild(self):
        """The tf_keras model with Keras 3's weights (raises keras3_map.Unmappable)."""
        from .. import keras_env
        from .keras3_map import Unmappable, build, walk_layers

        keras = keras_env.keras()
        model = build(self.config, keras)
        layers = dict(walk_layers(model))
        weights = np.load(self.weights, allow_pickle=False)
        for path, keys in self.info["layers"]:
            values = [weights[k] for k in keys]
            if not values:
                continue
            layer = layers.get(path)
            if layer is None:
                raise Unmappable(path, "?", "no layer of that name in the rebuilt model")
            expected = [tuple(w.shape) for w in layer.get_weights()]
            if expected != [v.shape for v in values]:
                raise Unmappable(path, type(layer).__name__,
                                 f"weights shaped {[v.shape for v in values]} in Keras 3, {expected} in tf_keras")
            layer.set_weights(values)
        return model

    def prove_parity(self, model, x: np.ndarray) -> dict:
        """Compare the rebuilt model's outputs with Keras 3's on ``x``; raise when they differ."""
        from ..datasets.keras_io import predict

        theirs = self.predict(x)
        ours = predict(model, x)
        rows = []
        for name, a, b in zip([o.name for o in self.signature.outputs], theirs, ours):
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            tol = PARITY_RTOL * max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
            rows.append({"output": name, "max_abs_diff": diff, "tolerance": tol})
            if not diff <= tol:
                raise InputError(f"the model rebuilt in tf_keras differs from Keras 3 at output {name!r}: "
                                 f"max |difference| {diff:.3g} on {len(x)} test samples, tolerance "
                                 f"{tol:.3g}", where=str(self.path),
                                 expected="layers that compute the same in Keras 3 and tf_keras",
                                 fix=UNMAPPABLE_FIX)
        self.parity = {"samples": int(len(x)), "outputs": rows,
                       "max_abs_diff": max(r["max_abs_diff"] for r in rows),
                       "tolerance": f"{PARITY_RTOL:g} x max(1, max |Keras 3 output|)"}
        return self.parity

    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        x_path, out_path = self.worker.path("x.npy"), self.worker.path("out.npz")
        np.save(x_path, np.asarray(x, np.float32))
        reply = self.worker.call("predict", path=str(self.path), x=x_path, out=out_path)
        if not reply["ok"]:
            raise InputError(f"Keras 3 could not run the model: {_first_line(reply['error'])[:300]}",
                             where=str(self.path))
        with np.load(out_path) as npz:
            return [npz[f"o{i}"] for i in range(len(npz.files))]

    def describe(self) -> dict:
        out = {"keras_version": self.info["keras"], "file": str(self.path)}
        if self.mapped:
            from importlib.metadata import version

            out.update(rebuilt_in=f"tf_keras {version('tf-keras')}", parity=self.parity)
        else:
            out.update(rebuilt_in=None, converted_as_is=True, why=self.unmapped_why)
        return out

    # -------------------------------------------------------------- write back

    def write_back(self, model, out: Path, x: np.ndarray) -> tuple[list[np.ndarray], str]:
        """Save ``model`` (the compressed tf_keras model) as a Keras 3 ``.keras`` at ``out``;
        returns Keras 3's outputs of the reloaded file on ``x`` and the Keras version."""
        from .keras3_map import walk_layers

        arrays, layers, widths = {}, [], {}
        originals = _layer_configs(self.config)
        for path, layer in walk_layers(model):
            keys = []
            for value in layer.get_weights():
                keys.append(f"w{len(arrays)}")
                arrays[keys[-1]] = value
            layers.append([path, keys])
            cfg, before = layer.get_config(), originals.get(layer.name, {})
            changed = {k: cfg[k] for k in ("filters", "units") if k in cfg and k in before and cfg[k] != before[k]}
            if changed:
                widths[layer.name] = changed
        weights, x_path, pred = self.worker.path("new.npz"), self.worker.path("x.npy"), self.worker.path("p.npz")
        np.savez(weights, **arrays)
        np.save(x_path, np.asarray(x, np.float32))
        reply = self.worker.call("save", path=str(self.path), weights=weights, layers=layers, widths=widths,
                                 out=str(out), x=x_path, pred=pred)
        if not reply["ok"]:
            raise RuntimeError(f"writing the Keras 3 file failed: {reply['error']}\n{reply.get('trace', '')}")
        with np.load(pred) as npz:
            return [npz[f"o{i}"] for i in range(len(npz.files))], reply["keras"]


def _layer_configs(config) -> dict[str, dict]:
    found = {}

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node and isinstance(node.get("config"), dict) and "name" in node["config"]:
                found.setdefault(node["config"]["name"], node["config"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


class Keras3Model:
    """A Keras 3 model kept as it is (a recipe that only quantizes): run and converted in the
    worker. It offers what the pipeline asks of a model that is not compressed."""

    layers: list = []

    def __init__(self, bridge: Keras3Bridge):
        self.bridge = bridge

    def predict(self, x, batch_size: int = 256, verbose: int = 0):
        out = self.bridge.predict(np.asarray(x))
        return out if len(out) > 1 else out[0]

    def count_params(self) -> int:
        return int(self.bridge.info["params"])

    def to_tflite(self, precision: str, *, representative=None, int8_io=False, sparse=False,
                  per_channel=True) -> bytes:
        out = self.bridge.worker.path(f"{precision}.tflite")
        rep = None
        if representative is not None:
            rep = self.bridge.worker.path("rep.npy")
            np.save(rep, np.asarray(representative, np.float32))
        reply = self.bridge.worker.call("tflite", path=str(self.bridge.path), precision=precision,
                                        representative=rep, int8_io=int8_io, sparse=sparse,
                                        per_channel=per_channel, out=out)
        if not reply["ok"]:
            raise UnsupportedError(f"the TFLite converter failed for {precision}: "
                                   f"{_first_line(reply['error'])[:300]}", where="export.tflite",
                                   fix="drop that precision from recipe.quantize or change the layer")
        return Path(out).read_bytes()

    def to_onnx(self, path: Path, opset: int) -> dict:
        reply = self.bridge.worker.call("onnx", path=str(self.bridge.path), out=str(path), opset=opset)
        if not reply["ok"]:
            raise UnsupportedError(f"tf2onnx could not convert the Keras 3 model: "
                                   f"{_first_line(reply['error'])[:300]}", where="export.onnx",
                                   fix='remove "onnx" from recipe.formats')
        return {"opset": opset, "converter": reply["converter"] + " (Keras 3 model, traced)"}


def trains(recipe) -> bool:
    """True when the recipe changes weights in Keras (anything but post-training quantization)."""
    return any(getattr(recipe, k) is not None for k in ("prune", "cluster", "qat", "regularize"))


def load_keras3(bridge: Keras3Bridge, data, recipe, log):
    """The SourceModel for a Keras 3 file: rebuilt in tf_keras with parity proven on the test
    inputs, or (recipes that only quantize) the Keras 3 model itself when it cannot be mapped."""
    from ..source import file_digest
    from ..types import SourceModel
    from .keras3_map import Unmappable

    try:
        model = bridge.rebuild()
    except Unmappable as exc:
        if trains(recipe):
            raise InputError(f"cannot rebuild the Keras 3 model in tf_keras for compression: {exc}",
                             where=str(bridge.path), expected="layers both Keras versions share",
                             fix=UNMAPPABLE_FIX) from None
        bridge.mapped, bridge.unmapped_why = False, str(exc)
        log(f"the Keras 3 model is quantized as it is, in Keras 3 ({exc})")
        model = Keras3Model(bridge)
    else:
        bridge.mapped = True
        parity = bridge.prove_parity(model, np.asarray(data.x_test[:PARITY_SAMPLES]))
        log(f"rebuilt in tf_keras: outputs match Keras 3 on {parity['samples']} test samples "
            f"(max |difference| {parity['max_abs_diff']:.2g})")
    return SourceModel(model=model, input_shape=bridge.signature.input_shape, num_classes=data.num_classes,
                       origin=str(bridge.path), sha256=file_digest(bridge.path), kind="keras3", bridge=bridge)
