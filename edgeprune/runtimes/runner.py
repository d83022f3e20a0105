#!/usr/bin/env python3
"""The edgeprune runner: load one artifact, run inputs through it, time invokes.

This file is the far side of every device. It is self-contained on purpose: it
needs only the standard library, numpy and one runtime (ai-edge-litert, falling
back to tflite_runtime and then tf.lite; or onnxruntime), and Python 3.9 or
newer, so it is copied as it is to a Raspberry Pi, run under qemu-aarch64, or
imported in-process on this machine.

Protocol (one directory, the "job"):
    request.json   {"artifact": "model.tflite", "engine": "litert"|"onnxruntime",
                    "threads": 1, "delegate": "xnnpack"|"none", "warmup": 10,
                    "repeats": 50, "min_time_s": 0.0, "mark_invokes": false}
    inputs.npy     float32, shape (N, *input_shape): samples to run, one per invoke
    ARTIFACT       the model file named in the request
The runner writes ``outputs.npy`` (float32, dequantized, shape (N, *output_shape); a
model with several outputs has each flattened per sample and concatenated, in the order
of ``outputs_layout`` in the result: [{"name": ..., "shape": [...]}, ...]) and prints one
JSON object on stdout: {"ok": true, "runtime": ..., "latency_ms": [...],
"outputs_layout": [...], ...}, or {"ok": false, "error": ..., "stage": ...} with exit
status 2.

Paired blocks (load-robust comparisons, see :func:`paired_blocks`):
    "control_pairs": K (and "control_block_ms") in a request adds "control" to the
        result: K pairs of blocks alternating a fixed numpy workload with the model,
        so that a later comparison can divide out the machine's load.
    "ab_artifact": "other.tflite" (with "ab_pairs", "ab_block_ms"; inputs for it in
        ``inputs_ab.npy``, else ``inputs.npy``) makes the job an A/B comparison: both
        models loaded in one process, blocks of invokes alternating between them, both
        loaded afresh for each pair of blocks; the result holds "ab" and no outputs
        are written.

Per-operator cost: "ops": {"models": [{"file": "op_0003.tflite", "index": 3}, ...],
"warmup": 2, "repeats": 5} in a request (LiteRT only) makes the runner also load each
one-op model (files beside the artifact, written by edgeprune.measure.op_models), fill
its inputs with seeded random values and time ``repeats`` invokes after ``warmup``, the
same way as the whole model; the result gets "ops": [{"index": 3, "latency_ms": [...]},
or {"index": 3, "error": "..."} for an op its runtime could not load].

Timing: after ``warmup`` invokes on the first sample, ``repeats`` invokes are
timed one by one with time.perf_counter_ns (about 0.5 µs overhead); the loop goes
on past ``repeats`` until ``min_time_s`` has passed. With ``mark_invokes`` each
timed invoke is bracketed by a getppid() system call, which the QEMU plugin
uses to count the instructions of exactly those invokes (the whole model's first,
then each op model's, in the order of "ops").
"""

import json
import os
import platform
import sys
import time

try:
    import numpy as np
except ImportError as _numpy_missing:  # reported as data by main(), like a missing runtime
    np = None
    NUMPY_ERROR = "numpy is not importable: %s" % _numpy_missing
else:
    NUMPY_ERROR = None

PROTOCOL_VERSION = 1


class RunnerError(Exception):
    def __init__(self, stage, message):
        super().__init__(message)
        self.stage = stage


def _litert_interpreter(path, threads, delegate):
    errors = []
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            mod = __import__(module, fromlist=["Interpreter"])
        except Exception as exc:  # ImportError, or a broken install
            errors.append("%s: %s" % (module, exc))
            continue
        kwargs = {"model_path": path, "num_threads": threads}
        if delegate == "none":
            resolver = getattr(mod, "OpResolverType", None)
            if resolver is None and hasattr(mod, "experimental"):
                resolver = getattr(mod.experimental, "OpResolverType", None)
            if resolver is not None:
                kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        cls = mod.Interpreter
        try:
            interp = cls(**kwargs)
            interp.allocate_tensors()
        except Exception as exc:
            raise RunnerError("load", "%s could not load %s: %s" % (module, os.path.basename(path), exc))
        version = _version_of(module.split(".")[0])
        return interp, "%s %s" % (module.split(".")[0], version)
    raise RunnerError("runtime-missing", "no TFLite runtime importable: " + "; ".join(errors))


def _version_of(dist):
    names = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
             "tensorflow": "tensorflow", "onnxruntime": "onnxruntime"}
    try:
        from importlib.metadata import version
        return version(names.get(dist, dist))
    except Exception:
        return "unknown"


def _signature_output_names(interp, details):
    """Output names from the model's only signature (the Keras output names), else the
    tensor names. The private lookup leaves the interpreter as it was (a signature runner
    would keep references that block invoke())."""
    names = dict((d["index"], d["name"]) for d in details)
    try:
        signatures = interp._get_full_signature_list()
        if len(signatures) == 1:
            for name, index in list(signatures.values())[0]["outputs"].items():
                names[index] = name
    except Exception:  # an older runtime without signatures: tensor names
        pass
    return [names[d["index"]] for d in details]


def _flat(parts):
    """One output as it is; several flattened per sample and concatenated (see output_layout)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p.reshape(-1) for p in parts])


class LiteRTModel:
    def __init__(self, path, threads, delegate):
        self.interp, self.runtime = _litert_interpreter(path, threads, delegate)
        inputs, outputs = self.interp.get_input_details(), self.interp.get_output_details()
        # a one-op model whose inputs are all constants (a DEQUANTIZE of weights) has none
        self.inp = inputs[0] if inputs else None
        self.outs = outputs
        self.out = outputs[0] if outputs else None
        self.output_names = _signature_output_names(self.interp, self.outs)

    def set_input(self, sample):
        x = sample[None, ...].astype(np.float32)
        scale, zero = self.inp["quantization"]
        if self.inp["dtype"] in (np.int8, np.uint8) and scale:
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interp.set_tensor(self.inp["index"], x.astype(self.inp["dtype"]))

    def set_random_inputs(self, seed):
        """Every input tensor filled with seeded random values of its type (one-op models)."""
        rng = np.random.RandomState(seed)
        for detail in self.interp.get_input_details():
            dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
            if dtype.kind == "f":
                value = rng.standard_normal(shape)
            elif dtype.kind in "iu":
                info = np.iinfo(dtype)
                value = rng.randint(max(info.min, -128), min(info.max, 127) + 1, size=shape)
            else:
                value = np.zeros(shape)
            self.interp.set_tensor(detail["index"], value.astype(dtype))

    def invoke(self):
        self.interp.invoke()

    def get_output(self):
        return _flat([self._dequantized(d) for d in self.outs])

    def _dequantized(self, detail):
        y = self.interp.get_tensor(detail["index"])
        scale, zero = detail["quantization"]
        if detail["dtype"] in (np.int8, np.uint8) and scale:
            y = (y.astype(np.float32) - zero) * scale
        return y[0].astype(np.float32)

    def output_layout(self):
        return [{"name": n, "shape": [int(v) for v in d["shape"][1:]]}
                for n, d in zip(self.output_names, self.outs)]


class OnnxModel:
    def __init__(self, path, threads, delegate):
        try:
            import onnxruntime as ort
        except Exception as exc:
            raise RunnerError("runtime-missing", "onnxruntime is not importable: %s" % exc)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(path, sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RunnerError("load", "onnxruntime could not load %s: %s" % (os.path.basename(path), exc))
        self.runtime = "onnxruntime %s" % ort.__version__
        self.input_name = self.sess.get_inputs()[0].name
        self.input_type = _ONNX_TYPES.get(self.sess.get_inputs()[0].type, np.float32)
        self.outputs = self.sess.get_outputs()
        self.feed = None
        self.result = None

    def set_input(self, sample):
        self.feed = {self.input_name: sample[None, ...].astype(self.input_type)}

    def invoke(self):
        self.result = self.sess.run(None, self.feed)

    def get_output(self):
        return _flat([np.asarray(r)[0].astype(np.float32) for r in self.result])

    def output_layout(self):
        shapes = [[int(v) for v in np.asarray(r).shape[1:]] for r in self.result] if self.result else \
            [[d if isinstance(d, int) else -1 for d in o.shape[1:]] for o in self.outputs]
        return [{"name": o.name, "shape": shape} for o, shape in zip(self.outputs, shapes)]


_ONNX_TYPES = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(float)": np.float32} \
    if np is not None else {}


ENGINES = {"litert": LiteRTModel, "onnxruntime": OnnxModel}


def run_job(request, inputs, artifact_path):
    """Run one job in this process; returns (result dict, outputs array)."""
    engine = ENGINES.get(request.get("engine"))
    if engine is None:
        raise RunnerError("request", "unknown engine %r" % request.get("engine"))
    model = engine(artifact_path, int(request.get("threads", 1)), request.get("delegate", "xnnpack"))
    outputs = []
    for sample in inputs:
        model.set_input(sample)
        model.invoke()
        outputs.append(model.get_output())
    outputs = np.stack(outputs) if outputs else np.zeros((0,), np.float32)
    latency = _time_invokes(model, inputs[0], int(request.get("warmup", 10)),
                            int(request.get("repeats", 50)), float(request.get("min_time_s", 0.0)),
                            bool(request.get("mark_invokes", False)))
    control = None
    if int(request.get("control_pairs", 0)) > 0:
        workload = ControlWorkload()
        control = {"workload": workload.describe()}
        control.update(paired_blocks(workload, model, int(request["control_pairs"]),
                                     float(request.get("control_block_ms", 10.0))))
    ops = _time_ops(request, os.path.dirname(os.path.abspath(artifact_path)))
    result = {
        "ok": True,
        "protocol": PROTOCOL_VERSION,
        "runtime": model.runtime,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": int(request.get("threads", 1)),
        "delegate": request.get("delegate", "xnnpack"),
        "samples": int(len(inputs)),
        "warmup": int(request.get("warmup", 10)),
        "latency_ms": latency,
        "outputs_layout": model.output_layout(),
    }
    if ops is not None:
        result["ops"] = ops
    if control is not None:
        result["control"] = control
    return result, outputs


def run_ab_job(request, inputs_a, inputs_b, path_a, path_b):
    """An A/B job: the models at ``path_a`` and ``path_b`` loaded side by side in this
    process, warmed up, then timed in alternating blocks (:func:`paired_blocks`), both
    loaded afresh for every pair."""
    engine = ENGINES.get(request.get("engine"))
    if engine is None:
        raise RunnerError("request", "unknown engine %r" % request.get("engine"))
    threads, delegate = int(request.get("threads", 1)), request.get("delegate", "xnnpack")
    paths, inputs = (path_a, path_b), (inputs_a, inputs_b)

    def load(k):
        model = engine(paths[k], threads, delegate)
        model.set_input(inputs[k][0])
        for _ in range(int(request.get("warmup", 10))):
            model.invoke()
        return model

    models = [load(0), load(1)]
    ab = paired_blocks(models[0], models[1], int(request.get("ab_pairs", 20)),
                       float(request.get("ab_block_ms", 10.0)), reload=load)
    return {"ok": True, "protocol": PROTOCOL_VERSION, "runtime": models[0].runtime,
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": threads, "delegate": delegate, "ab": ab}


class ControlWorkload:
    """A fixed amount of arithmetic to time beside a model: float32 48x48 matrix
    products with numpy (below OpenBLAS's threading threshold, so one thread).
    Divided into the model's time, it takes out most of what the machine's load and
    clock do to both."""

    products = 3
    size = 48

    def __init__(self):
        rng = np.random.RandomState(0)
        self.a = rng.rand(self.size, self.size).astype(np.float32)
        self.b = rng.rand(self.size, self.size).astype(np.float32)
        self.c = np.empty((self.size, self.size), np.float32)

    def describe(self):
        return "numpy %s: %d float32 %dx%d matrix products" % (
            np.__version__, self.products, self.size, self.size)

    def set_input(self, sample):
        pass

    def invoke(self):
        for _ in range(self.products):
            np.dot(self.a, self.b, out=self.c)


def _timed(model, count):
    clock = time.perf_counter_ns
    out = []
    for _ in range(count):
        t0 = clock()
        model.invoke()
        out.append((clock() - t0) / 1e6)
    return out


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def paired_blocks(first, second, pairs, block_ms, min_invokes=3, max_invokes=5000,
                  reload=None):
    """Time two models (inputs already set) in ``pairs`` pairs of blocks.

    Each block is about ``block_ms`` of back-to-back invokes of one model (the count
    per model is fixed after a short probe); a pair is one block of each, and the
    order alternates (first-second, second-first, ...) so that a trend in the
    machine's load falls on both sides alike. With ``reload`` (``reload(k)`` returns a
    freshly loaded, warmed-up instance of model k), every pair after the first times
    new instances of both, loaded in that pair's order: where one instance's buffers
    land in memory moves its time for as long as it lives (two instances of the same
    5 us file, kept for 20 pairs, differed by up to 10% in all 20 pairs; reloaded per
    pair, their median ratio stayed within 0.985-1.007 and neither side won more than
    12 of 20), so an instance must be a sample, not a constant. Returns ``{"pairs":
    [[first median ms, second median ms], ...], "block_invokes": [n_first, n_second],
    "block_ms": ..., "reloaded": bool}``: the median per-invoke time of each block, so
    a preempted invoke does not count.
    """
    models = [first, second]
    sizes = []
    for model in models:
        per_invoke = max(_median(_timed(model, 5)), 1e-4)
        sizes.append(int(min(max(block_ms / per_invoke, min_invokes), max_invokes)))
    out = []
    for i in range(pairs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        if reload is not None and i:
            models = [None, None]  # the old instances go before the new ones load
            for k in order:
                models[k] = reload(k)
        medians = [0.0, 0.0]
        for k in order:
            medians[k] = round(_median(_timed(models[k], sizes[k])), 7)
        out.append(medians)
    return {"pairs": out, "block_invokes": sizes, "block_ms": block_ms,
            "reloaded": reload is not None}


def _time_ops(request, folder):
    """Each one-op model of ``request["ops"]`` timed alone (see the module's docstring)."""
    spec = request.get("ops")
    if not spec:
        return None
    if request.get("engine") != "litert":
        raise RunnerError("request", "per-op timing needs the litert engine")
    threads, delegate = int(request.get("threads", 1)), request.get("delegate", "xnnpack")
    mark = bool(request.get("mark_invokes", False))
    folder = spec.get("folder") or folder  # an in-process run names the folder itself
    rows = []
    for entry in spec.get("models", []):
        path = os.path.join(folder, os.path.basename(entry["file"]))
        try:  # loading and the unmarked warm-up show an op that cannot run alone (no window opened)
            model = LiteRTModel(path, threads, delegate)
            model.set_random_inputs(int(entry["index"]))
            for _ in range(max(1, int(spec.get("warmup", 2)))):
                model.invoke()
        except Exception as exc:
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            rows.append({"index": entry["index"], "error": "%s: %s" % (type(exc).__name__, detail)})
            continue
        rows.append({"index": entry["index"], "latency_ms": _time_invokes(
            model, None, 0, int(spec.get("repeats", 5)), float(spec.get("min_time_s", 0.0)), mark)})
    return rows


def _time_invokes(model, sample, warmup, repeats, min_time_s, mark):
    if sample is not None:  # None: the inputs are set already
        model.set_input(sample)
    for _ in range(warmup):
        model.invoke()
    clock = time.perf_counter_ns
    marker = os.getppid
    samples = []
    started = clock()
    deadline = started + int(min_time_s * 1e9)
    while len(samples) < repeats or clock() < deadline:
        t0 = clock()
        if mark:  # inside the clock readings: the counted window holds the invoke only
            marker()
        model.invoke()
        if mark:
            marker()
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        if len(samples) >= 100000:
            break
    return samples


def run_job_dir(job_dir):
    """Run the job in ``job_dir`` (protocol above); returns the result dict."""
    with open(os.path.join(job_dir, "request.json")) as fh:
        request = json.load(fh)
    inputs = np.load(os.path.join(job_dir, "inputs.npy"), allow_pickle=False)
    artifact = os.path.join(job_dir, os.path.basename(request["artifact"]))
    if request.get("ab_artifact"):
        other = os.path.join(job_dir, os.path.basename(request["ab_artifact"]))
        ab_inputs = os.path.join(job_dir, "inputs_ab.npy")
        inputs_b = np.load(ab_inputs, allow_pickle=False) if os.path.exists(ab_inputs) else inputs
        return run_ab_job(request, inputs, inputs_b, artifact, other)
    result, outputs = run_job(request, inputs, artifact)
    np.save(os.path.join(job_dir, "outputs.npy"), outputs)
    result["outputs"] = "outputs.npy"
    return result


def result_from_stdout(text):
    """The runner's JSON result: the last line of ``text`` that is a JSON object, or None."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(json.dumps({"ok": False, "stage": "usage", "error": "usage: runner.py JOB_DIR"}))
        return 2
    if NUMPY_ERROR:
        print(json.dumps({"ok": False, "stage": "runtime-missing", "error": NUMPY_ERROR}))
        return 2
    try:
        result = run_job_dir(argv[0])
    except RunnerError as exc:
        print(json.dumps({"ok": False, "stage": exc.stage, "error": str(exc)}))
        return 2
    except Exception as exc:  # report anything else as data: the host decides what it means
        print(json.dumps({"ok": False, "stage": "run", "error": "%s: %s" % (type(exc).__name__, exc)}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
