"""Compare edgeprune's compression techniques on scikit-learn digits (8x8x1), in one run.

For three small architectures built here (a CNN, a depthwise-separable CNN, an MLP),
each technique runs through ``edgeprune.compress.compress`` with its own recipe; the
result is exported to float32 and int8 TFLite (int8: post-training quantization
calibrated on 200 training images, or the QAT model when the recipe has QAT) and
measured with ai_edge_litert on this machine:

- accuracy on the 360 held-out test images, of the exported file (LiteRT, int8);
- gzip -9 bytes of the float32 and int8 files, and how many times smaller the int8
  file is than the float32 baseline's;
- latency: invoke loop, batch 1, one thread, default resolver (XNNPACK); the mean per
  invoke over ``--invokes`` calls, repeated ``--repeats`` times: min and median (us).

Not run by CI. ``--quick`` trains and fine-tunes for fewer epochs and times fewer invokes.

    python benchmarks/techniques.py [--quick] [--arch cnn,dscnn,mlp] [--only channel50,pcq]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeprune import keras_env  # noqa: E402  (sets TF_USE_LEGACY_KERAS first)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# --------------------------------------------------------------------------- models

def build_cnn(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
        L.MaxPooling2D(2, name="pool2"),
        L.Flatten(name="flatten"),
        L.Dense(64, activation="relu", name="fc1"),
        L.Dense(10, name="logits"),
    ], name="cnn")


def build_dscnn(keras):
    L = keras.layers
    layers = [keras.Input((8, 8, 1), name="image"),
              L.Conv2D(32, 3, padding="same", use_bias=False, name="stem"),
              L.BatchNormalization(name="stem_bn"), L.ReLU(name="stem_relu")]
    for i, (width, pool) in enumerate(((64, True), (128, False)), start=1):
        layers += [L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}"),
                   L.BatchNormalization(name=f"dw{i}_bn"), L.ReLU(name=f"dw{i}_relu"),
                   L.Conv2D(width, 1, use_bias=False, name=f"pw{i}"),
                   L.BatchNormalization(name=f"pw{i}_bn"), L.ReLU(name=f"pw{i}_relu")]
        if pool:
            layers.append(L.MaxPooling2D(2, name=f"pool{i}"))
    layers += [L.GlobalAveragePooling2D(name="gap"), L.Dense(10, name="logits")]
    return keras.Sequential(layers, name="dscnn")


def build_mlp(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        L.Flatten(name="flatten"),
        L.Dense(256, activation="relu", name="fc1"),
        L.Dense(128, activation="relu", name="fc2"),
        L.Dense(10, name="logits"),
    ], name="mlp")


ARCHS = {"cnn": build_cnn, "dscnn": build_dscnn, "mlp": build_mlp}


# --------------------------------------------------------------------------- techniques

def recipes(epochs: int, pc_sparsity: float = 0.92, pc_clusters: int = 8,
            pc_scope: str = "global", pc_epochs: int | None = None) -> dict[str, tuple[str, object]]:
    """Technique key -> (label, Recipe)."""
    from edgeprune.recipe import ClusterSpec, FinetuneSpec, PruneSpec, QatSpec, Recipe

    ft = FinetuneSpec(epochs=epochs, batch_size=32, learning_rate=1e-3)
    unstructured = PruneSpec(structure="unstructured", final_sparsity=0.75)
    deep = PruneSpec(structure="unstructured", final_sparsity=pc_sparsity, scope=pc_scope)
    c16 = ClusterSpec(number_of_clusters=16, preserve_sparsity=True, epochs=max(1, epochs // 2))
    pc_epochs = pc_epochs or (epochs * 3) // 2      # deeper pruning, longer recovery
    pc_ft = FinetuneSpec(epochs=pc_epochs, batch_size=32, learning_rate=1e-3)
    cdeep = ClusterSpec(number_of_clusters=pc_clusters, preserve_sparsity=True,
                        epochs=max(1, pc_epochs // 2))
    pc_label = f"prune {pc_sparsity:.0%}{' global' if pc_scope == 'global' else ''}+cluster {pc_clusters}"
    half = max(1, epochs // 2)
    return {
        "baseline": ("baseline (PTQ int8)", Recipe(prune=None, finetune=ft)),
        "unstr75": ("unstructured 75%", Recipe(prune=unstructured, finetune=ft)),
        # tfmot's block sparsity needs 2-D kernels: Conv layers stay dense (a note says so);
        # the 64x10 classifier would keep one 16x1 block per class, so it stays dense too.
        "block16": ("block 16x1 75% (Dense)", Recipe(
            prune=PruneSpec(structure="block", block_size=(16, 1), final_sparsity=0.75,
                            per_layer={"logits": 0.0}),
            finetune=ft)),
        "m2n4": ("2:4", Recipe(prune=PruneSpec(structure="m_by_n"), finetune=ft)),
        "channel50": ("channel 50%", Recipe(
            prune=PruneSpec(structure="channel", final_sparsity=0.5), finetune=ft)),
        "cluster16": ("cluster 16 (sp.-pres.)", Recipe(prune=None, cluster=c16, finetune=ft)),
        "pc": (f"{pc_label}+int8", Recipe(prune=deep, cluster=cdeep, finetune=pc_ft)),
        "pcq": (f"{pc_label}+PCQAT", Recipe(
            prune=deep, cluster=cdeep, finetune=pc_ft,
            qat=QatSpec(preserve="sparsity_and_clusters", epochs=half))),
        "qat": ("QAT", Recipe(prune=None, finetune=ft, qat=QatSpec(epochs=half))),
        "pqat": ("PQAT (75%)", Recipe(prune=unstructured, finetune=ft,
                                      qat=QatSpec(preserve="sparsity", epochs=half))),
    }


# --------------------------------------------------------------------------- measuring

def litert(tflite: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite, num_threads=1)
    interp.allocate_tensors()
    return interp


def _feed(interp, x: np.ndarray) -> None:
    detail = interp.get_input_details()[0]
    if detail["dtype"] != np.float32:
        scale, zero = detail["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(detail["dtype"])
    interp.set_tensor(detail["index"], x)


def tflite_accuracy(tflite: bytes, x: np.ndarray, y: np.ndarray) -> float:
    interp = litert(tflite)
    out = interp.get_output_details()[0]["index"]
    hits = 0
    for i in range(len(x)):
        _feed(interp, x[i:i + 1])
        interp.invoke()
        hits += int(np.argmax(interp.get_tensor(out)) == y[i])
    return hits / len(x)


def latency_us(tflite: bytes, sample: np.ndarray, *, invokes: int, repeats: int) -> tuple[float, float]:
    """(min, median) over ``repeats`` of the mean time of one invoke, in microseconds."""
    interp = litert(tflite)
    _feed(interp, sample)
    for _ in range(max(20, invokes // 10)):
        interp.invoke()
    means = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(invokes):
            interp.invoke()
        means.append((time.perf_counter_ns() - start) / invokes / 1000.0)
    return min(means), statistics.median(means)


@dataclass
class Row:
    arch: str
    technique: str
    params: int
    keras_acc: float
    int8_acc: float
    float_gzip: int
    int8_gzip: int
    float_lat: tuple[float, float]
    int8_lat: tuple[float, float]
    seconds: float


def dataset():
    from edgeprune.data import array_digest
    from edgeprune.types import Dataset

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "digits"))
    import model as digits  # noqa: E402  models/digits/model.py

    a = digits.load_arrays()
    return Dataset(x_train=a["x_train"], y_train=a["y_train"], x_val=a["x_val"], y_val=a["y_val"],
                   x_test=a["x_test"], y_test=a["y_test"], num_classes=10, source="sklearn digits",
                   sha256=array_digest(a["x_train"], a["y_train"], a["x_test"], a["y_test"]))


def train_baseline(arch: str, data, epochs: int):
    keras = keras_env.keras()
    keras_env.set_seed(0)
    model = ARCHS[arch](keras)
    model.compile(keras.optimizers.Adam(2e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0,
              validation_data=(data.x_val, data.y_val))
    return model


def run_one(arch: str, key: str, label: str, recipe, baseline, data, args) -> Row:
    from edgeprune.compress import compress
    from edgeprune.compress.qat import export_qat_int8
    from edgeprune.export.tflite import to_tflite
    from edgeprune.measure.size import gzip_size
    from edgeprune.types import SourceModel

    t0 = time.perf_counter()
    source = SourceModel(model=baseline, input_shape=(8, 8, 1), num_classes=10,
                         origin=f"benchmarks/{arch}", sha256="-")
    result = compress(source, recipe, data)
    rep = data.representative(200)
    float_tfl = to_tflite(result.model, "float32")
    if result.qat_model is not None:
        int8_tfl = export_qat_int8(result.qat_model, rep, int8_io=True)
    else:
        int8_tfl = to_tflite(result.model, "int8", representative=rep, int8_io=True)
    if args.save:
        folder = Path(args.save)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{arch}_{key}_float32.tflite").write_bytes(float_tfl)
        (folder / f"{arch}_{key}_int8.tflite").write_bytes(int8_tfl)
    sample = data.x_test[:1]
    row = Row(arch=arch, technique=label, params=int(result.model.count_params()),
              keras_acc=float(_keras_accuracy(result.model, data)),
              int8_acc=tflite_accuracy(int8_tfl, data.x_test, data.y_test),
              float_gzip=gzip_size(float_tfl), int8_gzip=gzip_size(int8_tfl),
              float_lat=latency_us(float_tfl, sample, invokes=args.invokes, repeats=args.repeats),
              int8_lat=latency_us(int8_tfl, sample, invokes=args.invokes, repeats=args.repeats),
              seconds=time.perf_counter() - t0)
    for note in result.notes:
        print(f"    note [{arch}/{key}]: {note}", file=sys.stderr)
    return row


def _keras_accuracy(model, data) -> float:
    scores = model.predict(data.x_test, verbose=0, batch_size=256)
    return float(np.mean(np.argmax(scores, axis=1) == data.y_test))


def print_table(rows: list[Row]) -> None:
    base = {r.arch: r for r in rows if r.technique.startswith("baseline")}
    header = (f"{'arch':6} {'technique':28} {'params':>7} {'keras%':>7} {'int8%':>6} "
              f"{'d_pts':>6} {'f32 gz':>7} {'int8 gz':>7} {'x smaller':>9} "
              f"{'f32 us min/med':>15} {'int8 us min/med':>15} {'f32 x':>6} {'int8 x':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        b = base.get(r.arch)
        drop = (b.keras_acc - r.int8_acc) * 100 if b else float("nan")
        ratio = b.float_gzip / r.int8_gzip if b else float("nan")
        f_speed = b.float_lat[0] / r.float_lat[0] if b else float("nan")
        i_speed = b.int8_lat[0] / r.int8_lat[0] if b else float("nan")
        print(f"{r.arch:6} {r.technique:28} {r.params:7d} {r.keras_acc * 100:7.2f} "
              f"{r.int8_acc * 100:6.2f} {drop:6.2f} {r.float_gzip:7d} {r.int8_gzip:7d} "
              f"{ratio:9.1f} {r.float_lat[0]:7.1f}/{r.float_lat[1]:<7.1f} "
              f"{r.int8_lat[0]:7.1f}/{r.int8_lat[1]:<7.1f} {f_speed:6.2f} {i_speed:6.2f}")
    print()
    print("keras% = accuracy of the compressed float Keras model; int8% = of the int8 TFLite in "
          "LiteRT; d_pts = float baseline keras% - int8%; x smaller = float32 baseline gzip / "
          "int8 gzip; f32 x / int8 x = speed-up of min latency vs the same-precision baseline.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and invokes")
    parser.add_argument("--arch", default="cnn,dscnn,mlp")
    parser.add_argument("--only", default="", help="technique keys, comma-separated")
    parser.add_argument("--pc-sparsity", type=float, default=0.92,
                        help="sparsity of the prune+cluster techniques (default 0.92)")
    parser.add_argument("--pc-clusters", type=int, default=8)
    parser.add_argument("--pc-scope", choices=("per_layer", "global"), default="global")
    parser.add_argument("--pc-epochs", type=int, default=None,
                        help="fine-tuning epochs of the prune+cluster techniques "
                             "(default 1.5x the others')")
    parser.add_argument("--save", default="", help="folder to write every .tflite into")
    parser.add_argument("--invokes", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    args.invokes = args.invokes or (200 if args.quick else 1000)
    args.repeats = args.repeats or (5 if args.quick else 15)
    train_epochs, ft_epochs = (10, 2) if args.quick else (40, 8)
    data = dataset()
    table = recipes(ft_epochs, args.pc_sparsity, args.pc_clusters, args.pc_scope,
                    args.pc_epochs)
    keys = [k for k in args.only.split(",") if k] or list(table)
    if "baseline" not in keys:
        keys.insert(0, "baseline")
    from edgeprune.errors import EdgepruneError

    rows: list[Row] = []
    skipped: list[str] = []
    t_start = time.perf_counter()
    for arch in args.arch.split(","):
        baseline = train_baseline(arch, data, train_epochs)
        for key in keys:
            label, recipe = table[key]
            try:
                row = run_one(arch, key, label, recipe, baseline, data, args)
            except EdgepruneError as exc:   # a technique that does not apply to this model
                print(f"  {arch}/{key}: not applicable: {exc}", file=sys.stderr)
                skipped.append(f"{arch}/{key}: {exc.what}")
                continue
            print(f"  {arch}/{key}: int8 {row.int8_acc:.4f}, {row.int8_gzip} B gzip, "
                  f"{row.seconds:.0f}s", file=sys.stderr)
            rows.append(row)
    print(f"\n{len(rows)} runs in {time.perf_counter() - t_start:.0f}s; train {train_epochs} "
          f"epochs, fine-tune {ft_epochs}; latency: {args.invokes} invokes x {args.repeats} "
          "repeats, 1 thread, XNNPACK\n")
    print_table(rows)
    for line in skipped:
        print(f"not applicable: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
