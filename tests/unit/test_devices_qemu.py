"""The emulated aarch64 board: real qemu-aarch64, the real aarch64 runtimes, the plugin.

The emulator root is built once per test session (about 30 to 45 s and 100 MB
of downloads from Debian and PyPI) in the session's private cache.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeprune.devices import RunRequest, device_for
from edgeprune.devices.qemu import QemuDevice
from edgeprune.devices.qemu_guest import EmulatorRoot, read_counts
from edgeprune.devices.qemu_root import prepare_root
from edgeprune.errors import EXIT_DEVICE, DeviceError, UnsupportedError
from edgeprune.runtimes import runner
from edgeprune.targets import TargetProfile

pytestmark = pytest.mark.qemu

REQUEST = dict(warmup=2, repeats=5)


def _profile(cpu: str, engine: str = "litert") -> TargetProfile:
    deploy = "float32.onnx" if engine == "onnxruntime" else "int8.tflite"
    return TargetProfile.model_validate({
        "name": f"test-{cpu}", "description": "test board", "arch": "aarch64", "cpu": cpu,
        "runtime": {"engine": engine, "threads": 4}, "device": {"kind": "qemu", "cpu": cpu},
        "recipe": {"deploy": deploy}})


@pytest.fixture(scope="session")
def emulator_root():
    return prepare_root(log=lambda message: None)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, keras):
    """A Dense 16->32->10 model as float and full-int8 TFLite and as float ONNX."""
    import tf2onnx

    import edgeprune.keras_env as keras_env

    tf = keras_env.tf()
    keras_env.set_seed(0)
    model = keras.Sequential([keras.Input(shape=(16,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    out = tmp_path_factory.mktemp("qemu-artifacts")
    (out / "float32.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    (out / "int8.tflite").write_bytes(conv.convert())
    proto, _ = tf2onnx.convert.from_keras(
        model, input_signature=(tf.TensorSpec((None, 16), tf.float32, name="x"),), opset=13)
    (out / "float32.onnx").write_bytes(proto.SerializeToString())
    return out, x[:8]


def _host(path, inputs, engine="litert"):
    _, outputs = runner.run_job(RunRequest(engine=engine, **REQUEST).to_json(path.name), inputs,
                                str(path))
    return outputs


@pytest.fixture(scope="module")
def int8_runs(emulator_root, artifacts):
    """Two runs on a Cortex-A76 (each op also counted alone) and one on a Cortex-A53 of the
    int8 model, the three jobs at once from three threads (each pinned to its own CPU)."""
    from concurrent.futures import ThreadPoolExecutor

    folder, inputs = artifacts
    with_ops = RunRequest(engine="litert", op_repeats=2, **REQUEST)
    a76, a53 = QemuDevice(_profile("cortex-a76")), QemuDevice(_profile("cortex-a53"))
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [pool.submit(a76.run, folder / "int8.tflite", inputs, with_ops) for _ in range(2)]
        jobs.append(pool.submit(a53.run, folder / "int8.tflite", inputs,
                                RunRequest(engine="litert", **REQUEST)))
        runs = [job.result() for job in jobs]
    return {"a76": runs[:2], "a53": runs[2]}


def test_prepare_root_returns_cached_folder_when_called_again(emulator_root):
    started = time.monotonic()
    again = prepare_root(log=lambda message: pytest.fail(f"rebuilt: {message}"))
    assert again == emulator_root and time.monotonic() - started < 5
    layout = EmulatorRoot(again)
    assert layout.python.is_file() and layout.plugin.is_file()
    assert "CPU part\t: 0xd08" in (layout.cpu_dir("cortex-a72") / "proc" / "cpuinfo").read_text()


def test_device_for_returns_qemu_device_when_kind_is_qemu():
    device = device_for(_profile("cortex-a72"))
    assert isinstance(device, QemuDevice) and device.describe() == "qemu-aarch64 cortex-a72"


def test_qemu_int8_outputs_equal_host_bit_for_bit(artifacts, int8_runs):
    folder, inputs = artifacts
    host = _host(folder / "int8.tflite", inputs)
    for result in (*int8_runs["a76"], int8_runs["a53"]):
        assert result.outputs.shape == host.shape == (8, 10)
        assert np.array_equal(result.outputs, host)


def test_qemu_instruction_counts_positive_and_labelled(int8_runs):
    result = int8_runs["a76"][0]
    assert len(result.instructions_per_invoke) == REQUEST["repeats"]
    assert all(count > 1000 for count in result.instructions_per_invoke)
    assert result.latency_is_meaningful is False
    assert result.instructions_by.startswith("qemu-aarch64 ") and "cortex-a76" in result.instructions_by
    assert result.extra["threads"] == 1 and result.extra["guest_threads"] == 1


def test_qemu_counts_classes_that_add_up_and_show_int8_multiply_accumulates(int8_runs):
    from edgeprune.devices.cost.classes import CLASSES

    for result in (*int8_runs["a76"], int8_runs["a53"]):
        for total, by_class in zip(result.instructions_per_invoke, result.instructions_by_class):
            assert tuple(by_class) == CLASSES and sum(by_class.values()) == total
            # float input and output: a few float multiplies (de)quantize them
            assert by_class["simd_int_mac"] > by_class["simd_fp_mac"]
            assert by_class["branch"] > 0 and by_class["load"] > 0


def test_qemu_counts_each_op_alone_when_asked(int8_runs, artifacts):
    from edgeprune.measure.op_models import split_ops

    folder, _ = artifacts
    first, second = int8_runs["a76"]
    assert [row["op"] for row in first.ops] == [op.op for op in split_ops(folder / "int8.tflite")]
    for row, again in zip(first.ops, second.ops):
        assert len(row["instructions"]) == 2 and min(row["instructions"]) > 0
        assert sum(row["instructions_by_class"][-1].values()) == row["instructions"][-1]
        assert abs(row["instructions"][-1] - again["instructions"][-1]) <= 0.001 * row["instructions"][-1]
    # The ops alone hold the model's work, plus a fixed invoke overhead each.
    whole = first.instructions_per_invoke[-1]
    assert whole < sum(row["instructions"][-1] for row in first.ops) < 4 * whole


def test_qemu_jobs_started_together_run_on_different_host_cpus(int8_runs):
    import os

    cpus = [run.extra["host_cpu"] for run in (*int8_runs["a76"], int8_runs["a53"])]
    assert set(cpus) <= os.sched_getaffinity(0)
    assert len(set(cpus)) == min(3, len(os.sched_getaffinity(0)))


def test_qemu_instruction_counts_identical_when_run_twice(int8_runs):
    first, second = int8_runs["a76"]
    for a, b in zip(first.instructions_per_invoke, second.instructions_per_invoke):
        assert abs(a - b) <= 0.001 * a


def test_qemu_instruction_counts_differ_between_a53_and_a76(int8_runs):
    # The a76 has the dot-product instructions, so XNNPACK picks other int8 kernels.
    assert int8_runs["a53"].instructions_per_invoke != int8_runs["a76"][0].instructions_per_invoke


def test_qemu_float_outputs_match_host_within_tolerance(emulator_root, artifacts):
    folder, inputs = artifacts
    result = QemuDevice(_profile("cortex-a72")).run(folder / "float32.tflite", inputs,
                                                    RunRequest(engine="litert", **REQUEST))
    np.testing.assert_allclose(result.outputs, _host(folder / "float32.tflite", inputs),
                               rtol=1e-4, atol=1e-5)
    assert min(result.instructions_per_invoke) > 0
    assert all(by_class["simd_fp_mac"] > 0 and by_class["simd_int_mac"] == 0
               for by_class in result.instructions_by_class)


def test_qemu_runs_onnxruntime_with_counts_within_0_1_percent_when_run_twice(emulator_root,
                                                                              artifacts):
    # onnxruntime reads the clock in every run and keeps a second thread. Its counts
    # repeat to within a few instructions: about one run in eight comes out 14
    # instructions lower in some windows (a start-up race with that thread).
    folder, inputs = artifacts
    device = QemuDevice(_profile("cortex-a72", "onnxruntime"))
    request = RunRequest(engine="onnxruntime", **REQUEST)
    first, second = (device.run(folder / "float32.onnx", inputs, request) for _ in range(2))
    assert first.runtime.startswith("onnxruntime ")
    np.testing.assert_allclose(first.outputs, _host(folder / "float32.onnx", inputs, "onnxruntime"),
                               rtol=1e-4, atol=1e-5)
    assert len(first.instructions_per_invoke) == REQUEST["repeats"]
    assert min(first.instructions_per_invoke) > 0
    for a, b in zip(first.instructions_per_invoke, second.instructions_per_invoke):
        assert abs(a - b) <= 0.001 * a


def test_qemu_raises_unsupported_when_artifact_cannot_load(emulator_root, tmp_path, artifacts):
    _, inputs = artifacts
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"this is not a flatbuffer")
    with pytest.raises(UnsupportedError, match="broken.tflite"):
        QemuDevice(_profile("cortex-a72")).run(broken, inputs, RunRequest(engine="litert", **REQUEST))


def test_prepare_root_names_tool_and_package_when_qemu_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError) as info:
        prepare_root(log=lambda message: None)
    assert info.value.exit_code == EXIT_DEVICE
    assert "qemu-aarch64" in str(info.value) and "apt-get install qemu-user" in str(info.value)


def test_read_counts_rejects_counts_when_windows_do_not_match_invokes(tmp_path):
    counts = tmp_path / "counts.txt"
    head = "edgeprune-insn-count 2\nclasses load branch\nvcpus 1\n"
    counts.write_text(head + "unpaired 1\ncrossed 0\nw 100 60 40\nw 200 150 50\n")
    with pytest.raises(DeviceError, match="unpaired = 1.*2 windows for 3 timed invokes"):
        read_counts(counts, expected=3)
    counts.write_text(head + "unpaired 0\ncrossed 0\nw 100 60 40\nw 200 150 49\n")
    with pytest.raises(DeviceError, match="do not add up"):
        read_counts(counts, expected=2)
    counts.write_text(head + "unpaired 0\ncrossed 0\nw 100 60 40\nw 200 150 50\n")
    read = read_counts(counts, expected=2)
    assert read.windows == [100, 200] and read.vcpus == 1
    assert read.by_class == [{"load": 60, "branch": 40}, {"load": 150, "branch": 50}]


def test_read_counts_rejects_file_of_an_older_plugin(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text("edgeprune-insn-count 1\nvcpus 1\nunpaired 0\ncrossed 0\n100\n")
    with pytest.raises(DeviceError, match="prepare-emulator --force"):
        read_counts(counts, expected=1)


def test_prepare_emulator_command_prints_root_when_cached(emulator_root):
    from click.testing import CliRunner

    from edgeprune.devices.commands import prepare_emulator

    result = CliRunner().invoke(prepare_emulator, [])
    assert result.exit_code == 0 and f"emulator root: {emulator_root}" in result.output


def test_prepare_emulator_command_exits_4_when_tool_missing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgeprune.devices.commands import prepare_emulator

    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(prepare_emulator, ["--force"])
    assert result.exit_code == EXIT_DEVICE and "apt-get install qemu-user" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
