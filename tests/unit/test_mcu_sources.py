"""The pinned TFLM sources: the offline mirror, the upstream archives, the checks, and the
errors a user meets without them (no network: the upstream is a folder of archives
made here with GitHub's layout)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from edgeprune.errors import DeviceError
from edgeprune.mcu import build, sources

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "third_party" / "tflm-src.tar.xz"


def _mirror() -> Path:
    path = Path(os.environ.get(sources.SOURCES_ENV, MIRROR))
    if not path.exists():
        pytest.fail(f"the TFLM source mirror is missing: set {sources.SOURCES_ENV} "
                    "(CI: ../shared/third_party/tflm-src.tar.xz)")
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_lock_pins_every_mirror_file_the_build_uses():
    lock = sources.load_lock()
    core = sources.files_of(lock, "core")
    assert len(core) > 600 and len(sources.files_of(lock, "reference")) == 14
    assert "tensorflow/lite/micro/micro_interpreter.cc" in core
    assert all(len(entry[1]) == 64 for entry in lock["files"].values())
    assert set(lock["repos"]) == {"tflite-micro", "CMSIS-NN", "CMSIS_6", "flatbuffers", "gemmlowp", "ruy"}


def test_source_tree_unpacks_and_checks_the_mirror_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(sources.SOURCES_ENV, str(_mirror()))
    tree = sources.source_tree()
    assert tree.groups == ("core",) and tree.origin.startswith("mirror ")
    conv = tree.root / "tensorflow/lite/micro/kernels/cmsis_nn/conv.cc"
    assert _sha(conv.read_bytes()) == sources.load_lock()["files"][conv.relative_to(tree.root).as_posix()][1]
    assert sources.source_tree() == tree               # cached: the same folder, not redone


def test_reference_kernels_from_the_mirror_are_exit_4_naming_files_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(sources.SOURCES_ENV, str(_mirror()))
    with pytest.raises(DeviceError) as caught:
        sources.source_tree(("core", "reference"))
    err = caught.value
    assert err.exit_code == 4 and "reference kernels" in str(err) and "conv.cc" in str(err)
    assert f"unset {sources.SOURCES_ENV}" in err.fix


def test_tampered_mirror_file_is_rejected_naming_it(tmp_path, monkeypatch):
    folder = tmp_path / "mirror" / "tflm-src"
    with tarfile.open(_mirror()) as tar:
        tar.extractall(tmp_path / "mirror", filter="data")
    target = folder / "tensorflow/lite/micro/micro_interpreter.cc"
    target.write_text(target.read_text() + "\n// changed\n")
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(sources.SOURCES_ENV, str(tmp_path / "mirror"))
    with pytest.raises(DeviceError, match="micro_interpreter.cc") as caught:
        sources.source_tree()
    assert "differ from the pinned" in str(caught.value)
    assert not list((tmp_path / "cache").glob("tflm-src-*/tree.json"))   # nothing half-made kept


# A two-repository "upstream": tflite-micro (holding a patch) and a library it patches.
_ORIGINAL = b"int answer(void);\n"
_PATCH = (b"--- a/include/lib.h\n+++ b/include/lib.h\n@@ -1 +1,2 @@\n int answer(void);\n"
          b"+int question(void);\n")


def _upstream(tmp_path: Path, lib_text: bytes = _ORIGINAL) -> tuple[str, dict]:
    repos = {"tflite-micro": {"github": "t/micro", "ref": "abc123", "prefix": ""},
             "lib": {"github": "l/lib", "ref": "v1", "prefix": "third_party/lib/",
                     "patch": "tools/lib.patch"}}
    contents = {"tflite-micro": {"core.h": b"#define CORE 1\n", "kernels/ref.cc": b"// ref\n",
                                 "tools/lib.patch": _PATCH},
                "lib": {"include/lib.h": lib_text}}
    for name, repo in repos.items():
        archive = tmp_path / "up" / repo["github"] / "archive" / f"{repo['ref']}.tar.gz"
        archive.parent.mkdir(parents=True)
        with tarfile.open(archive, "w:gz") as tar:
            for rel, data in contents[name].items():
                info = tarfile.TarInfo(f"{name}-{repo['ref']}/{rel}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    patched = _ORIGINAL + b"int question(void);\n"
    files = {"core.h": ["tflite-micro", _sha(b"#define CORE 1\n")],
             "kernels/ref.cc": ["tflite-micro", _sha(b"// ref\n"), "reference"],
             "tools/lib.patch": ["tflite-micro", _sha(_PATCH), "patch"],
             "third_party/lib/include/lib.h": ["lib", _sha(patched)]}
    return f"file://{tmp_path / 'up'}", {"schema": "x", "repos": repos, "files": files}


def test_upstream_archives_are_fetched_patched_and_checked(tmp_path, monkeypatch):
    base, lock = _upstream(tmp_path)
    monkeypatch.setattr(sources, "load_lock", lambda: json.loads(json.dumps(lock)))
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(sources.SOURCES_ENV, raising=False)
    monkeypatch.setenv(sources.UPSTREAM_ENV, base)
    tree = sources.source_tree(("core", "reference"))
    assert tree.groups == ("core", "reference") and tree.origin == f"upstream {base}"
    assert (tree.root / "third_party/lib/include/lib.h").read_bytes().endswith(b"question(void);\n")
    assert (tree.root / "kernels/ref.cc").read_bytes() == b"// ref\n"


def test_upstream_archive_with_other_content_is_rejected(tmp_path, monkeypatch):
    base, lock = _upstream(tmp_path, lib_text=b"int answer(void);\nint extra;\n")
    monkeypatch.setattr(sources, "load_lock", lambda: lock)
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(sources.SOURCES_ENV, raising=False)
    monkeypatch.setenv(sources.UPSTREAM_ENV, base)
    with pytest.raises(DeviceError):   # the patch no longer applies, or the digest differs
        sources.source_tree()


def test_no_mirror_and_no_network_is_exit_4_naming_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(sources.SOURCES_ENV, raising=False)
    monkeypatch.setenv(sources.UPSTREAM_ENV, f"file://{tmp_path / 'nowhere'}")
    with pytest.raises(DeviceError) as caught:
        sources.source_tree()
    assert caught.value.exit_code == 4 and sources.SOURCES_ENV in caught.value.fix


def test_kernel_files_come_from_the_sources_registrations(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(sources.SOURCES_ENV, str(_mirror()))
    tree = sources.source_tree()
    files = build.kernel_files(tree, ["AddConv2D", "AddRelu"], "cmsis-nn")
    assert files[:2] == ["tensorflow/lite/micro/kernels/cmsis_nn/conv.cc",
                         "tensorflow/lite/micro/kernels/conv_common.cc"]
    assert "tensorflow/lite/micro/kernels/activations.cc" in files
    assert any(f.endswith("ConvolutionFunctions/arm_convolve_s8.c") for f in files)
    # a model with FULLY_CONNECTED and no CONV_2D still links CMSIS-NN's 1x1 convolution
    fc = build.kernel_files(tree, ["AddFullyConnected"], "cmsis-nn")
    assert any(f.endswith("ConvolutionFunctions/arm_convolve_1x1_s8_fast.c") for f in fc)
    with pytest.raises(DeviceError, match=r"tensorflow/lite/micro/kernels/conv\.cc"):
        build.kernel_files(tree, ["AddConv2D"], "reference")


def test_missing_cross_compiler_is_exit_4_with_the_apt_command(monkeypatch):
    real = build.shutil.which
    monkeypatch.setattr(build.shutil, "which",
                        lambda tool: None if tool == "arm-none-eabi-gcc" else real(tool))
    with pytest.raises(DeviceError) as caught:
        build.check_toolchain()
    assert caught.value.exit_code == 4
    assert "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" in caught.value.fix


def test_missing_emulator_is_exit_4_with_the_apt_command(monkeypatch):
    from edgeprune.mcu import run

    monkeypatch.setattr(run.shutil, "which", lambda tool: None)
    with pytest.raises(DeviceError) as caught:
        run.check_emulator()
    assert caught.value.exit_code == 4 and "apt-get install qemu-system-arm" in caught.value.fix
