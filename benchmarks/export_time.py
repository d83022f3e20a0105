"""Export time on a real model: ``edgeprune export --target host`` against a hand-written
script that follows the tfmot pruning guide (prune_low_magnitude, fine-tune, strip, the
TFLite converter at int8, and the TFLite model's accuracy on the test split).

The model is MobileNetV2 alpha 0.35 at 96x96 (tf_keras.applications, weights=None, 10
classes), trained briefly on deterministic synthetic data (coloured patterns, seed 0),
saved once; both contenders then run in fresh processes (TensorFlow's import included)
with the same fine-tuning epochs, batch size and calibration samples. The goal is an
export at most 2x the script's time.

    python benchmarks/export_time.py [--epochs 2] [--train 512] [--test 128]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from common import print_table, subprocess_env, work_folder

MAKE = textwrap.dedent("""
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np, tf_keras as keras
    out, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    n = n_train + n_test
    y = rng.integers(0, 10, n)
    yy, xx = np.mgrid[0:96, 0:96] / 95.0
    x = np.empty((n, 96, 96, 3), np.float32)
    for i, c in enumerate(y):  # class c: a grating of frequency c+1, its own colour, plus noise
        wave = 0.5 + 0.5 * np.sin((c + 1) * np.pi * (xx * np.cos(c) + yy * np.sin(c)))
        colour = np.array([(c % 3) / 2, (c % 5) / 4, (c % 7) / 6], np.float32)
        x[i] = wave[..., None] * (0.3 + 0.7 * colour) + 0.1 * rng.standard_normal((96, 96, 3))
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:n_train], y[:n_train], epochs=2, batch_size=32, verbose=0)
    model.save(os.path.join(out, "mobilenetv2.keras"))
    np.savez(os.path.join(out, "data.npz"), x_train=x[:n_train], y_train=y[:n_train],
             x_test=x[n_train:], y_test=y[n_train:])
""")

# The tfmot guide's recipe, written out by hand as a user would.
SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np, tensorflow as tf, tf_keras as keras
    import tensorflow_model_optimization as tfmot
    folder, epochs = sys.argv[1], int(sys.argv[2])
    d = np.load(os.path.join(folder, "data.npz"))
    x_train, y_train, x_test, y_test = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    model = keras.models.load_model(os.path.join(folder, "mobilenetv2.keras"), compile=False)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    _, base_acc = model.evaluate(x_test, y_test, verbose=0)
    n_val = len(x_train) // 10
    steps = int(np.ceil((len(x_train) - n_val) / 32)) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=max(1, steps * 2 // 3))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned.fit(x_train[:-n_val], y_train[:-n_val], epochs=epochs, batch_size=32, verbose=0,
               validation_data=(x_train[-n_val:], y_train[-n_val:]),
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rep = x_train[:200]
    converter.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    data = converter.convert()
    open(os.path.join(folder, "script_int8.tflite"), "wb").write(data)
    interp = tf.lite.Interpreter(model_content=data)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    hits = 0
    for xi, yi in zip(x_test, y_test):
        interp.set_tensor(inp["index"], xi[None])
        interp.invoke()
        hits += int(np.argmax(interp.get_tensor(out["index"])) == yi)
    print(f"script: baseline {base_acc:.4f}, int8 tflite {hits / len(x_test):.4f}")
""")


def _run(cmd: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):  # 3: a budget missed, which does not matter here
        sys.exit(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs, both contenders")
    ap.add_argument("--train", type=int, default=512)
    ap.add_argument("--test", type=int, default=128)
    ap.add_argument("--folder", type=Path, help="keep the model, data and outputs here")
    args = ap.parse_args()
    folder = work_folder(args.folder, "edgeprune-bench-")
    env = subprocess_env()
    if not (folder / "mobilenetv2.keras").is_file():
        print(f"training MobileNetV2 0.35 96x96 briefly ({args.train} + {args.test} samples) in {folder}")
        _run([sys.executable, "-c", MAKE, str(folder), str(args.train), str(args.test)], env)
    script_s, script_out = _run([sys.executable, "-c", SCRIPT, str(folder), str(args.epochs)], env)
    export_s, export_out = _run([sys.executable, "-m", "edgeprune", "export", str(folder / "mobilenetv2.keras"),
                                 "--data", str(folder / "data.npz"), "--target", "host", "--epochs",
                                 str(args.epochs), "--out", str(folder / "dist")], env)
    stages = re.search(r"time by stage: (.*)", export_out)
    accuracy = re.search(r"script: (.*)", script_out)
    int8 = re.search(r"^int8\.tflite\s+\S+\s+\S+ \S+\s+\S+ \S+\s+(\S+)", export_out, re.M)
    rows = [("contender", "wall s", "ratio", "notes"),
            ("hand-written tfmot script", f"{script_s:.1f}", "1.00",
             f"prune + fine-tune + strip + int8 TFLite; {accuracy.group(1) if accuracy else ''}"),
            ("edgeprune export --target host", f"{export_s:.1f}", f"{export_s / script_s:.2f}",
             f"4 TFLite precisions, 2 ONNX, validated; int8 accuracy {int8.group(1) if int8 else '?'}")]
    print(f"MobileNetV2 alpha 0.35, 96x96, {args.train} train / {args.test} test samples, "
          f"{args.epochs} fine-tuning epochs, {os.cpu_count()} CPUs")
    print_table(rows)
    print(f"edgeprune {stages.group(0) if stages else '(no stage summary found)'}")
    print(f"goal: export at most 2x the script: {'met' if export_s <= 2 * script_s else 'NOT met'}")


if __name__ == "__main__":
    main()
