"""strip_tflite(): a .tflite file without the names and metadata no runtime reads; the same
ops, values and outputs, its inputs, outputs and signature still named, its buffers still
aligned, loadable by LiteRT and TFLite Micro; and the export that asks for it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeprune.export.names import ALIGNMENT, strip_tflite
from edgeprune.export.tflite import to_tflite
from edgeprune.measure.breakdown import breakdown_tflite
from edgeprune.measure.tflite_graph import read_graph, schema
from edgeprune.runtimes import runner


@pytest.fixture(scope="module")
def files(tiny_cnn, tiny_data):
    """The tiny CNN at float32 and at int8 with int8 I/O, as converted."""
    rep = tiny_data.x_train[:50]
    return {"float32": to_tflite(tiny_cnn, "float32"),
            "int8": to_tflite(tiny_cnn, "int8", representative=rep, int8_io=True)}


def _outputs(data: bytes, x: np.ndarray, tmp_path, name: str) -> np.ndarray:
    path = tmp_path / name
    path.write_bytes(data)
    request = {"artifact": name, "engine": "litert", "threads": 1, "delegate": "none",
               "warmup": 0, "repeats": 1}
    _, outputs = runner.run_job(request, x, str(path))
    return outputs


def _aligned(data: bytes) -> bool:
    model = schema().Model.GetRootAs(data, 0)
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength() and buf._tab.Vector(buf._tab.Offset(4)) % ALIGNMENT:
            return False
    return True


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_strip_tflite_keeps_outputs_bit_exact_and_io_names(files, tiny_data, tmp_path, precision):
    named = files[precision]
    stripped = strip_tflite(named)
    assert len(stripped.data) < len(named) and stripped.bytes_saved == len(named) - len(stripped.data)
    assert stripped.names > 0 and stripped.metadata == ("CONVERSION_METADATA",)
    x = np.asarray(tiny_data.x_test[:32])
    assert np.array_equal(_outputs(named, x, tmp_path, "named.tflite"),
                          _outputs(stripped.data, x, tmp_path, "stripped.tflite"))
    before, after = read_graph(tmp_path / "named.tflite"), read_graph(tmp_path / "stripped.tflite")
    assert [op.name for op in after.ops] == [op.name for op in before.ops]
    assert [t.name for t in after.inputs] == [t.name for t in before.inputs]
    assert [t.name for t in after.outputs] == [t.name for t in before.outputs]
    inner = {t.index for op in after.ops for t in (*op.inputs, *op.outputs)} - \
        {t.index for t in (*after.inputs, *after.outputs)}
    assert inner and all(t.name == "" for op in after.ops for t in (*op.inputs, *op.outputs)
                         if t.index in inner)
    model = schema().ModelT.InitFromPackedBuf(stripped.data, 0)
    assert [m.name for m in model.metadata] == [b"min_runtime_version"]
    assert model.signatureDefs and model.signatureDefs[0].signatureKey == b"serving_default"
    assert model.description is None
    assert _aligned(stripped.data)     # (the converter aligns some small buffers to 4 only)


def test_strip_tflite_is_deterministic_and_idempotent(files):
    once = strip_tflite(files["int8"]).data
    assert strip_tflite(files["int8"]).data == once
    again = strip_tflite(once)
    assert again.data == once and again.names == 0 and again.metadata == ()


def test_breakdown_of_a_stripped_file_keys_tensors_by_index(files, tmp_path):
    (tmp_path / "named.tflite").write_bytes(files["int8"])
    (tmp_path / "stripped.tflite").write_bytes(strip_tflite(files["int8"]).data)
    named, stripped = breakdown_tflite(tmp_path / "named.tflite"), breakdown_tflite(tmp_path / "stripped.tflite")
    assert stripped["ops"] == named["ops"]
    assert sum(stripped["tensors"].values()) == sum(named["tensors"].values())
    assert all(key.startswith("#") and key[1:].isdigit() for key in stripped["tensors"])
    assert len(stripped["tensors"]) == len(named["tensors"])


_TFLM = textwrap.dedent("""
    import sys
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime
    out = []
    for path in sys.argv[1:]:
        interp = runtime.Interpreter.from_file(path, arena_size=64 * 1024)
        d = interp.get_input_details(0)
        x = np.random.default_rng(0).integers(-128, 128, size=d["shape"]).astype(d["dtype"])
        interp.set_input(x, 0)
        interp.invoke()
        out.append(interp.get_output(0).tolist())
    print(out[0] == out[1])
""")


def test_tflite_micro_runs_a_stripped_file_like_the_named_one(files, tmp_path):
    (tmp_path / "named.tflite").write_bytes(files["int8"])
    (tmp_path / "stripped.tflite").write_bytes(strip_tflite(files["int8"]).data)
    proc = subprocess.run([sys.executable, "-c", _TFLM, str(tmp_path / "named.tflite"),
                           str(tmp_path / "stripped.tflite")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "True"


def test_export_with_tflite_strip_records_it_and_measures_the_stripped_file(mini_export):
    from click.testing import CliRunner

    from edgeprune.cli import cli

    recipe = mini_export["recipe"]
    recipe.write_text(recipe.read_text() + "tflite_strip = true\n")
    result = CliRunner().invoke(cli, mini_export["args"])
    assert result.exit_code == 0, result.output
    out = mini_export["out"] / "host"
    report = json.loads((out / "report.json").read_text())
    art = next(a for a in report["artifacts"] if a["name"] == "int8.tflite")
    assert art["settings"]["stripped"]["tensor_names"] > 0
    assert art["settings"]["stripped"]["metadata"] == ["CONVERSION_METADATA"]
    data = (out / art["file"]).read_bytes()
    assert art["measurements"]["size_bytes"]["value"] == len(data)
    assert strip_tflite(data).bytes_saved == 0      # the file on disk is the stripped one


def test_strip_tflite_keeps_a_sparse_encoded_file_sparse_and_its_outputs(keras, tiny_data, tmp_path):
    from conftest import build_conv_dense

    from edgeprune.export.tflite import sparsify

    model = build_conv_dense(keras)
    weights = model.get_weights()
    for i in (0, 2, 4):                       # 80% of every kernel set to zero
        weights[i][np.abs(weights[i]) < np.quantile(np.abs(weights[i]), 0.8)] = 0.0
    model.set_weights(weights)
    sparse = sparsify(to_tflite(model, "float32"))
    stripped = strip_tflite(sparse).data
    x = np.asarray(tiny_data.x_test[:16])
    assert np.array_equal(_outputs(sparse, x, tmp_path, "sparse.tflite"),
                          _outputs(stripped, x, tmp_path, "stripped.tflite"))
    model_t = schema().ModelT.InitFromPackedBuf(stripped, 0)
    assert sum(t.sparsity is not None for t in model_t.subgraphs[0].tensors) == \
        sum(t.sparsity is not None for t in schema().ModelT.InitFromPackedBuf(sparse, 0).subgraphs[0].tensors) > 0
