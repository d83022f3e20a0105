"""The whole export on the reference model (few epochs), as a user runs it."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _export(out, *extra):
    from conftest import export_digits

    return export_digits(out, *extra)


@pytest.fixture(scope="module")
def exported(digits_export):
    return digits_export


def test_export_writes_report_manifest_and_artifacts(exported):
    folder, proc = exported
    report = json.loads((folder / "report.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert report["schema_version"] == 1 and report["deploy"] == "int8.tflite"
    names = [a["name"] for a in report["artifacts"]]
    assert names == ["baseline.keras", "compressed.keras", "float32.tflite", "dynamic.tflite",
                     "float16.tflite", "int8.tflite", "float32.onnx", "int8.onnx"]
    for entry in manifest["artifacts"]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["parent"] in {"compressed.keras", "float32.onnx"}
    assert {s["name"] for s in manifest["stages"]} == {"baseline.keras", "compressed.keras"}
    assert report["verdict"] == ("pass" if proc.returncode == 0 else "fail")
    assert "verdict:" in proc.stdout and "int8.tflite" in proc.stdout


# Lines third-party code writes from C++ or Python during an export, as seen before they were captured.
_NOISE = ("cuInit", "cudart_stub", "absl::InitializeLog", "NodeDef mentions attribute", "fully_quantize:",
          "XNNPACK delegate", "tensorflow/", "WARNING:", "UserWarning", "DeprecationWarning")


def test_export_prints_no_third_party_noise(exported):
    import re

    from edgeprune.progress import LINE_PREFIX

    _, proc = exported
    for line in (proc.stdout + proc.stderr).splitlines():
        assert not any(word in line for word in _NOISE), line
        assert not re.match(r"^[IWEF]\d{4} ", line), line          # glog / absl native lines
    # every stderr line is one of ours: a progress line with its elapsed time
    assert proc.stderr.strip() and all(re.match(LINE_PREFIX, line) for line in proc.stderr.splitlines()), \
        proc.stderr
    assert re.search(r"prune epoch 24/24: loss [\d.]+, accuracy [\d.]+", proc.stderr)
    assert "recipe from --epochs: 24 fine-tuning epochs" in proc.stdout


def test_export_figures_say_how_they_were_measured(exported):
    folder, _ = exported
    report = json.loads((folder / "report.json").read_text())
    for art in report["artifacts"]:
        for name, fig in art["measurements"].items():
            assert fig["method"] in ("measured", "estimated"), (art["name"], name)
            assert fig["by"], (art["name"], name)
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")["measurements"]
    assert "ai_edge_litert" in int8["accuracy"]["by"]
    assert int8["latency_ms"]["n"] >= 100 and int8["latency_ms"]["p90"] >= int8["latency_ms"]["value"]
    base = report["artifacts"][0]["measurements"]["accuracy"]["value"]
    assert base > 0.9 and int8["accuracy"]["value"] > base - 0.05
    sparsity = report["compression"]["sparsity"]
    # the reference model's host recipe is a search's choice (models/digits/recipes/host.toml):
    # 40% of the channels removed, then 90% of the weights left pruned, the stem and the
    # classifier with care (prune.stem_and_classifier_max_sparsity), 8 clusters, int8 weights
    # with a scale per tensor
    recipe = report["recipe"]
    assert recipe["prune"]["structure"] == "channel" and recipe["prune"]["then_sparsity"] == 0.9
    assert recipe["cluster"]["number_of_clusters"] == 8
    assert report["compression"]["steps"][0].startswith("prune(channel: ")
    assert report["compression"]["steps"][1:] == ["prune(unstructured)", "cluster(8, preserve_sparsity)"]
    assert report["compression"]["recipe_sources"]["prune"].endswith("models/digits/recipes/host.toml")
    floor = recipe["prune"]["stem_and_classifier_max_sparsity"]
    assert sparsity["conv2/kernel"] > 0.85 and sparsity["fc1/kernel"] > 0.85
    # pruned to the floor; tfmot's sparsity-preserving clustering then sets the centroid nearest
    # zero to zero, and the weights in that cluster join the pruned ones (0.52 and 0.55 here)
    for name in ("conv1/kernel", "logits/kernel"):
        assert floor - 1e-6 <= sparsity[name] < min(sparsity["conv2/kernel"], sparsity["fc1/kernel"]) - 0.25
    settings = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")["settings"]
    assert settings["per_channel"] is recipe["int8_per_channel"] is False
    # the clusters counted in the deployed file, not in the Keras model
    assert any(a.endswith("Measured in the file: each of its 4 conv and dense kernels holds at most 8 "
                          "distinct values.") for a in report["advice"]), report["advice"]
    integrity = {a["name"]: a["measurements"]["integrity"] for a in report["artifacts"][2:]}
    assert all(fig["passed"] and fig["checks"] for fig in integrity.values()), integrity
    assert integrity["int8.onnx"]["checks"][0]["against"] == "float32.onnx"


def test_export_artifacts_load_and_agree_with_report(exported):
    from ai_edge_litert.interpreter import Interpreter
    import onnxruntime as ort

    folder, _ = exported
    report = json.loads((folder / "report.json").read_text())
    for art in report["artifacts"][2:]:
        path = folder / art["file"]
        if art["format"] == "tflite":
            interp = Interpreter(model_path=str(path))
            interp.allocate_tensors()
            shape = interp.get_input_details()[0]["shape"]
        else:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((2, 8, 8, 1), np.float32)})[0]
            shape = out.shape
        assert shape is not None
        assert art["measurements"]["size_bytes"]["value"] == path.stat().st_size


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    out = tmp_path_factory.mktemp("rerun")
    proc = _export(out)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    return out / "host"


def test_export_is_byte_identical_when_repeated_with_same_seed(exported, rerun):
    folder, _ = exported
    for name in ("model_float32.tflite", "model_dynamic.tflite", "model_float16.tflite", "model_int8.tflite"):
        assert (folder / name).read_bytes() == (rerun / name).read_bytes(), name


def _check(report, baseline, *extra):
    cmd = [sys.executable, "-m", "edgeprune", "check", str(report), "--baseline", str(baseline), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_check_passes_noise_only_rerun(exported, rerun, tmp_path):
    folder, _ = exported
    baseline = tmp_path / "baseline.json"
    proc = _check(folder / "report.json", baseline, "--update-baseline")
    assert proc.returncode == 0 and baseline.is_file(), proc.stdout + proc.stderr
    assert "6 artifact(s) kept for A/B re-measurement" in proc.stdout
    # latency is re-measured A/B from the files kept beside the baseline: no tolerance to loosen
    proc = _check(rerun / "report.json", baseline, "--all",
                  "--junit", str(tmp_path / "junit.xml"), "--markdown", str(tmp_path / "summary.md"))
    verdict = json.loads((rerun / "report.json").read_text())["verdict"]
    assert proc.returncode == (0 if verdict == "pass" else 3), proc.stdout + proc.stderr
    assert "PASS: 0 regression(s)" in proc.stdout or "FAIL: 0 regression(s)" in proc.stdout
    assert proc.stdout.count("latency_ms: A/B in this run on local") == 6
    assert (tmp_path / "junit.xml").is_file() and "int8.tflite" in (tmp_path / "summary.md").read_text()


def test_check_catches_planted_size_regression_and_names_the_tensor(exported, tmp_path):
    folder, _ = exported
    baseline = tmp_path / "baseline.json"
    assert _check(folder / "report.json", baseline, "--update-baseline").returncode == 0
    report = json.loads((folder / "report.json").read_text())
    art = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")
    art["measurements"]["size_bytes"]["value"] += 1
    tensors = art["measurements"]["breakdown"]["tensors"]
    name = max(tensors, key=tensors.get)
    tensors[name] += 1
    planted = tmp_path / "report.json"
    planted.write_text(json.dumps(report))
    proc = _check(planted, baseline, "--no-remeasure")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    regressed = [line for line in proc.stdout.splitlines() if "REGRESSED" in line]
    assert len(regressed) == 1 and "int8.tflite" in regressed[0] and "size_bytes" in regressed[0]
    assert f"host/int8.tflite grew: tensor {name}:" in proc.stdout


def test_export_keeps_previous_output_when_run_fails(exported, tmp_path):
    folder, _ = exported
    before = (folder / "report.json").read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text("quantize = [\"int3\"]\n")
    proc = _export(folder.parent, "--recipe", str(bad))
    assert proc.returncode == 2 and "quantize" in proc.stderr and "Traceback" not in proc.stderr
    assert (folder / "report.json").read_bytes() == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["host"]


def test_export_interrupted_leaves_previous_output_intact(exported, tmp_path):
    """SIGTERM while the TFLite converter runs: the process ends within 2 s, the previous
    output is untouched, and nothing is left in the cache, HOME or the system temp folder."""
    import signal
    import time
    from pathlib import Path

    folder, _ = exported
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    home, systmp = tmp_path / "home", tmp_path / "systmp"
    home.mkdir()
    systmp.mkdir()
    cmd = [sys.executable, "-m", "edgeprune", "export", "--target", "host", "--out", str(folder.parent),
           "--train-epochs", "10", "--epochs", "3", "--seed", "1"]
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "TMPDIR": str(systmp)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    runs = Path(os.environ["EDGEPRUNE_CACHE"]) / "tmp"
    deadline = time.monotonic() + 300
    converting = False
    while proc.poll() is None and time.monotonic() < deadline and not converting:
        # the converter's temporary SavedModel lies in this run's temporary folder
        converting = any(p.is_dir() for run in runs.glob(f"run-{proc.pid}-*") for p in run.glob("tmp*"))
        time.sleep(0.02)
    assert converting, "the export never reached the TFLite conversion"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert took < 2.0, f"SIGTERM took {took:.2f}s"
    assert "interrupted" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["host"]
    gone = time.monotonic() + 5  # a converter still in its worker thread: removed just after exit
    while list(runs.glob(f"run-{proc.pid}-*")) and time.monotonic() < gone:
        time.sleep(0.05)
    assert list(runs.glob(f"run-{proc.pid}-*")) == []
    assert list(home.rglob("*")) == [] and list(systmp.rglob("*")) == []
