"""One `edgeprune` command per model kind a user brings, with its exit code, the task's
primary metric on the baseline and on the deployed artifact, the Keras 3 bridge's parity
and the wall time (fresh process each, TensorFlow's import included):

    python benchmarks/model_kinds.py [--folder DIR]

Kinds: Keras 3 CNN, Keras 3 residual network (channel pruning), Keras 3 transformer
(Embedding + MultiHeadAttention), Keras 3 model with a keras.ops call (quantized as it
is), regression autoencoder, multi-output model, image class folders, a loader, and a
.tflite made elsewhere (``edgeprune validate``). Models: tests/keras3_models.py and the
small tf_keras models below, trained with seed 0 on scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from common import ROOT, print_table, subprocess_env, work_folder
SHORT = 'quantize = ["float32", "int8"]\nformats = ["tflite"]\nfinetune = { epochs = 1 }\n'

TF_KERAS_MODELS = textwrap.dedent("""
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np, tensorflow as tf, tf_keras as keras
    from sklearn.datasets import load_digits
    out = sys.argv[1]
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:600]; y = d.target[:600]
    flat = x.reshape(-1, 64); ink = flat.mean(1, keepdims=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,))
    ae = keras.Model(inp, keras.layers.Dense(64, name="decoder")(keras.layers.Dense(16, activation="relu")(inp)))
    ae.compile("adam", "mse"); ae.fit(flat[:450], flat[:450], epochs=20, verbose=0); ae.save(f"{out}/ae.keras")
    np.savez(f"{out}/ae.npz", x_train=flat[:450], y_train=flat[:450], x_test=flat[450:], y_test=flat[450:])
    inp = keras.Input((64,)); h = keras.layers.Dense(32, activation="relu")(inp)
    mo = keras.Model(inp, [keras.layers.Dense(10, activation="softmax", name="digit")(h), keras.layers.Dense(1, name="ink")(h)])
    mo.compile("adam", ["sparse_categorical_crossentropy", "mse"]); mo.fit(flat[:450], [y[:450], ink[:450]], epochs=20, verbose=0)
    mo.save(f"{out}/mo.keras")
    np.savez(f"{out}/mo.npz", x_train=flat[:450], x_test=flat[450:], **{"y_train/digit": y[:450],
             "y_train/ink": ink[:450], "y_test/digit": y[450:], "y_test/ink": ink[450:]})
    cnn = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(10)])
    cnn.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    cnn.fit(x[:450, ..., None], y[:450], epochs=15, verbose=0); cnn.save(f"{out}/cnn_tf.keras")
    for i, (image, label) in enumerate(zip(d.images[:600], y)):
        path = f"{out}/images/digit_{label}/{i:03d}.png"; os.makedirs(os.path.dirname(path), exist_ok=True)
        tf.io.write_file(path, tf.io.encode_png((image * 16).clip(0, 255).astype(np.uint8)[..., None]))
    np.savez(f"{out}/arrays.npz", x=x[:450, ..., None], y=y[:450], xt=x[450:, ..., None], yt=y[450:])
    with open(f"{out}/loader.py", "w") as fh:
        fh.write("import numpy as np, tensorflow as tf\\n"
                 "def load():\\n"
                 f"    a = np.load({out + '/arrays.npz'!r})\\n"
                 "    return {'train': tf.data.Dataset.from_tensor_slices((a['x'], a['y'])).batch(32),\\n"
                 "            'test': (a['xt'], a['yt'])}\\n")
    rep = x[:100, ..., None]
    c = tf.lite.TFLiteConverter.from_keras_model(cnn); c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    open(f"{out}/elsewhere.tflite", "wb").write(c.convert())
""")


def kinds(f: Path) -> list[tuple[str, list[str], str]]:
    """(kind, command arguments, recipe additions)."""
    return [
        ("Keras 3 CNN", ["export", f"{f}/cnn.keras", "--data", f"{f}/digits.npz"], ""),
        ("Keras 3 residual (channel pruning)", ["export", f"{f}/residual.keras", "--data", f"{f}/digits.npz"],
         'prune = { structure = "channel", final_sparsity = 0.5 }\n'),
        ("Keras 3 transformer", ["export", f"{f}/transformer.keras", "--data", f"{f}/tokens.npz"],
         'tflite_sparse_encoding = "never"\n'),
        ("Keras 3 with keras.ops (as it is)", ["export", f"{f}/ops.keras", "--data", f"{f}/digits_flat.npz"],
         "prune = false\n"),
        ("regression autoencoder", ["export", f"{f}/ae.keras", "--data", f"{f}/ae.npz"], ""),
        ("multi-output", ["export", f"{f}/mo.keras", "--data", f"{f}/mo.npz"], ""),
        ("image class folders", ["export", f"{f}/cnn_tf.keras", "--data", f"{f}/images"],
         "data = { scale = 0.00392156862745098 }\n"),
        ("loader", ["export", f"{f}/cnn_tf.keras", "--data", f"{f}/loader.py:load"], ""),
        ("external .tflite (validate)", ["validate", f"{f}/elsewhere.tflite", "--data", f"{f}/digits.npz",
                                         "--reference", f"{f}/cnn_tf.keras"], ""),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path)
    args = ap.parse_args()
    folder = work_folder(args.folder, "edgeprune-kinds-")
    env = subprocess_env()
    if not (folder / "elsewhere.tflite").is_file():
        keras3_env = {k: v for k, v in env.items() if k != "TF_USE_LEGACY_KERAS"}
        for cmd, e in (([sys.executable, str(ROOT / "tests" / "keras3_models.py"), str(folder)], keras3_env),
                       ([sys.executable, "-c", TF_KERAS_MODELS, str(folder)], env)):
            subprocess.run(cmd, env=e, check=True, capture_output=True)
    rows = [("kind", "exit", "metric", "baseline", "deployed", "Keras 3 parity", "write-back", "wall s")]
    for kind, argv, extra in kinds(folder):
        out = folder / "out" / kind.split()[0].lower()
        recipe = folder / f"recipe-{len(rows)}.toml"
        recipe.write_text(SHORT + extra)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "edgeprune", *argv, "--target", "host", "--recipe",
                               str(recipe), "--out", str(out)], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        report_path = out / "host" / "report.json"
        if proc.returncode not in (0, 3) or not report_path.is_file():
            rows.append((kind, str(proc.returncode), (proc.stderr.strip().splitlines() or ["?"])[-1][:60],
                         "-", "-", "-", "-", f"{wall:.1f}"))
            continue
        report = json.loads(report_path.read_text())
        metric = report["model"]["task"]["primary_metric"]
        arts = {a["name"]: a["measurements"] for a in report["artifacts"]}
        base = next(iter(arts.values())).get(metric, {}).get("value")
        deployed = arts[report["deploy"]][metric]["value"]
        k3 = report["model"].get("keras3") or {}
        parity = f"{k3['parity']['max_abs_diff']:.1e}" if k3.get("parity") else ("as is" if k3 else "-")
        back = arts.get("compressed.keras3", {}).get("max_abs_diff", {}).get("value")
        rows.append((kind, str(proc.returncode), metric, "-" if base is None else f"{base:.4f}",
                     f"{deployed:.4f}", parity, "-" if back is None else f"{back:.1e}", f"{wall:.1f}"))
    print(f"host target, recipe: float32 + int8 TFLite, 1 fine-tuning epoch; {os.cpu_count()} CPUs; {folder}")
    print_table(rows)


if __name__ == "__main__":
    main()
