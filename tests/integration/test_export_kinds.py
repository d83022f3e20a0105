"""Whole exports of the model kinds users bring: Keras 3 files (a CNN, a residual network
whose channels are pruned, a transformer), a regression autoencoder, a multi-output
model, image class folders, a loader, and a .tflite made elsewhere (validate).

Each runs the host target with a short recipe (float32 and int8 TFLite, one epoch)."""

import json

import numpy as np
import pytest

from edgeprune.pipeline import ExportOptions, run_export

pytestmark = pytest.mark.slow

SHORT = 'quantize = ["float32", "int8"]\nformats = ["tflite"]\nfinetune = { epochs = 1 }\n'


def _export(tmp_path, model, data, extra="", **kw):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(SHORT + extra)
    result = run_export(ExportOptions(target="host", out_dir=tmp_path / "out", model=str(model), data=data,
                                      recipe=recipe, **kw))
    return result, result.report.to_dict()


def _m(report, artifact, figure):
    art = next(a for a in report["artifacts"] if a["name"] == artifact)
    return art["measurements"][figure]["value"]


def _keras3_written_back(report, folder):
    k3 = next(a for a in report["artifacts"] if a["name"] == "compressed.keras3")
    verdict = next(b for b in report["budgets"] if b["name"] == "keras3_parity")
    assert (folder / k3["file"]).is_file() and verdict["verdict"] == "pass"
    assert k3["settings"]["compared_with"] == "float32.tflite"
    return k3["measurements"]["max_abs_diff"]["value"]


def test_export_keras3_cnn_is_rebuilt_with_parity_and_written_back(tmp_path, keras3_models):
    result, report = _export(tmp_path, keras3_models / "cnn.keras", keras3_models / "digits.npz")
    bridge = report["model"]["keras3"]
    assert bridge["keras_version"].startswith("3.") and bridge["rebuilt_in"].startswith("tf_keras")
    assert bridge["parity"]["max_abs_diff"] <= 1e-4 and bridge["parity"]["samples"] == 150
    assert _keras3_written_back(report, result.out_dir) <= 1e-3
    assert _m(report, "baseline.keras", "accuracy") > 0.5
    assert report["verdict"] == "pass", report["budgets"]


def test_export_keras3_residual_prunes_channels_and_writes_the_narrower_model_back(tmp_path, keras3_models):
    result, report = _export(tmp_path, keras3_models / "residual.keras", keras3_models / "digits.npz",
                             'prune = { structure = "channel", final_sparsity = 0.5 }\n')
    steps = report["compression"]["steps"][0]
    assert "stem 8->4" in steps and "branch 8->4" in steps  # one shared mask across the Add
    assert _keras3_written_back(report, result.out_dir) <= 1e-3  # the narrower Keras 3 model
    assert _m(report, "baseline.keras", "accuracy") > 0.5
    assert abs(_m(report, "int8.tflite", "accuracy") - _m(report, "compressed.keras", "accuracy")) <= 0.05


def test_export_keras3_transformer_with_attention(tmp_path, keras3_models):
    result, report = _export(tmp_path, keras3_models / "transformer.keras", keras3_models / "tokens.npz",
                             'tflite_sparse_encoding = "never"\n')
    assert report["model"]["keras3"]["parity"]["max_abs_diff"] <= 1e-4
    assert _keras3_written_back(report, result.out_dir) <= 1e-3
    assert _m(report, "int8.tflite", "agreement") > 0.8


def test_export_keras3_model_that_cannot_be_mapped_is_quantized_as_it_is(tmp_path, keras3_models):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    # int8 weights with one scale per tensor: the setting reaches the Keras 3 process's converter
    result, report = _export(tmp_path, keras3_models / "ops.keras", keras3_models / "digits_flat.npz",
                             "prune = false\nint8_per_channel = false\n")
    assert report["model"]["keras3"]["converted_as_is"] and "keras.ops" in report["model"]["keras3"]["why"]
    assert _m(report, "float32.tflite", "agreement") == 1.0
    assert _m(report, "int8.tflite", "accuracy") >= _m(report, "baseline.keras", "accuracy") - 0.05 > 0.5
    interp = Interpreter(model_path=str(result.out_dir / "model_int8.tflite"))
    scales = [len(d["quantization_parameters"]["scales"]) for d in interp.get_tensor_details()
              if d["dtype"] == np.int8 and len(d["shape"]) == 2 and len(d["quantization_parameters"]["scales"])]
    assert scales and set(scales) == {1}


@pytest.fixture(scope="module")
def digits_flat():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32).reshape(-1, 64)[:600], d.target[:600]


def test_export_regression_autoencoder_reports_reconstruction_error(tmp_path, keras, digits_flat):
    x, _ = digits_flat
    inp = keras.Input((64,))
    model = keras.Model(inp, keras.layers.Dense(64, name="decoder")(keras.layers.Dense(16, activation="relu")(inp)))
    model.compile("adam", "mse")
    model.fit(x[:450], x[:450], epochs=20, verbose=0)
    model.save(tmp_path / "ae.keras")
    np.savez(tmp_path / "ae.npz", x_train=x[:450], y_train=x[:450], x_test=x[450:], y_test=x[450:])
    result, report = _export(tmp_path, tmp_path / "ae.keras", tmp_path / "ae.npz")
    assert report["model"]["task"]["outputs"][0]["kind"] == "regression"
    assert "accuracy" not in report["artifacts"][0]["measurements"]
    base, deployed = _m(report, "baseline.keras", "mse"), _m(report, "int8.tflite", "mse")
    assert 0 < base < 0.06 and deployed < base * 1.5 and _m(report, "int8.tflite", "max_abs_error") > 0
    # the target's relative quality budget judges the regression's error (max_accuracy_drop cannot)
    (rel,) = [b for b in report["budgets"] if b["name"] == "max_metric_rel_drop"]
    assert rel["figure"] == "mse" and rel["verdict"] in ("pass", "fail")
    assert rel["value"] == pytest.approx((deployed - base) / base, abs=1e-6)
    assert not any("max_accuracy_drop does not apply" in line for line in report["advice"])
    assert result.stages["compress"] > 0


def test_export_multi_output_judges_each_output(tmp_path, keras, digits_flat):
    x, y = digits_flat
    ink = x.mean(axis=1, keepdims=True)
    inp = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inp)
    model = keras.Model(inp, [keras.layers.Dense(10, activation="softmax", name="digit")(hidden),
                              keras.layers.Dense(1, name="ink")(hidden)])
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    model.fit(x[:450], [y[:450], ink[:450]], epochs=20, verbose=0)
    model.save(tmp_path / "mo.keras")
    np.savez(tmp_path / "mo.npz", x_train=x[:450], x_test=x[450:], **{
        "y_train/digit": y[:450], "y_train/ink": ink[:450], "y_test/digit": y[450:], "y_test/ink": ink[450:]})
    _, report = _export(tmp_path, tmp_path / "mo.keras", tmp_path / "mo.npz")
    assert _m(report, "int8.tflite", "digit/accuracy") >= _m(report, "baseline.keras", "digit/accuracy") - 0.05
    assert _m(report, "baseline.keras", "digit/accuracy") > 0.7
    assert _m(report, "int8.tflite", "ink/mse") < 2 * _m(report, "baseline.keras", "ink/mse") + 0.01
    drop = next(b for b in report["budgets"] if b["name"] == "max_accuracy_drop")
    assert drop["figure"] == "digit/accuracy"


def test_export_reads_image_class_folders(tmp_path, tiny_cnn):
    import edgeprune.keras_env as keras_env
    from sklearn.datasets import load_digits

    tf = keras_env.tf()
    d = load_digits()
    for i, (image, label) in enumerate(zip(d.images[:300], d.target[:300])):
        path = tmp_path / "images" / f"digit_{label}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png((image * 16).clip(0, 255).astype(np.uint8)[..., None]).numpy())
    tiny_cnn.save(tmp_path / "cnn.keras")
    _, report = _export(tmp_path, tmp_path / "cnn.keras", tmp_path / "images",
                        "data = { scale = 0.00392156862745098, split_seed = 1 }\n")
    settings = report["data"]["settings"]
    assert settings["kind"] == "images" and settings["files"] == {"train": 210, "val": 30, "test": 60}
    assert _m(report, "baseline.keras", "accuracy") > 0.3 and report["data"]["sha256"]  # 10 classes


def test_export_streams_a_loader(tmp_path, tiny_cnn, tiny_data):
    np.savez(tmp_path / "arrays.npz", x=tiny_data.x_train, y=tiny_data.y_train, xt=tiny_data.x_test,
             yt=tiny_data.y_test)
    (tmp_path / "my_loader.py").write_text(
        "import numpy as np\nimport tensorflow as tf\n"
        "def load():\n"
        f"    a = np.load({str(tmp_path / 'arrays.npz')!r})\n"
        "    return {'train': tf.data.Dataset.from_tensor_slices((a['x'], a['y'])),\n"
        "            'test': (a['xt'], a['yt'])}\n")
    tiny_cnn.save(tmp_path / "cnn.keras")
    # Fine-tuning on streamed data is the image test's; this one only quantizes.
    _, report = _export(tmp_path, tmp_path / "cnn.keras", f"{tmp_path / 'my_loader.py'}:load", "prune = false\n")
    assert report["data"]["settings"]["kind"] == "loader" and report["data"]["test_samples"] == 150
    assert _m(report, "int8.tflite", "accuracy") >= _m(report, "baseline.keras", "accuracy") - 0.05 > 0.25


def test_validate_external_tflite_with_a_reference(tmp_path, tiny_cnn, tiny_data):
    from click.testing import CliRunner

    from edgeprune.cli import cli
    from edgeprune.export.tflite import to_tflite

    (tmp_path / "elsewhere.tflite").write_bytes(to_tflite(tiny_cnn, "int8", representative=tiny_data.x_train[:100]))
    tiny_cnn.save(tmp_path / "before.keras")
    np.savez(tmp_path / "d.npz", x_train=tiny_data.x_train, y_train=tiny_data.y_train,
             x_test=tiny_data.x_test, y_test=tiny_data.y_test)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "elsewhere.tflite"), "--target", "host",
                                      "--data", str(tmp_path / "d.npz"), "--reference",
                                      str(tmp_path / "before.keras"), "--out", str(tmp_path / "out"),
                                      "--emit-c"])
    assert result.exit_code in (0, 3), result.output
    report = json.loads((tmp_path / "out" / "host" / "report.json").read_text())
    assert report["model"]["external"]["made_elsewhere"] and report["deploy"] == "int8.tflite"
    assert "made elsewhere" in report["advice"][0]
    drop = next(b for b in report["budgets"] if b["name"] == "max_accuracy_drop")
    assert drop["verdict"] in ("pass", "fail") and abs(drop["value"]) < 0.05
    assert (tmp_path / "out" / "host" / "firmware" / "g_model.h").is_file()
    assert _m(report, "int8.tflite", "agreement") > 0.9
