"""advise(): say when a technique cannot pay on the target, quoting measured numbers."""

from __future__ import annotations

from edgeprune.compress.advice import advise
from edgeprune.recipe import ClusterSpec, PruneSpec, Recipe
from edgeprune.targets import LocalDevice, MicroDevice, RuntimeSpec, TargetProfile

MEASURED = {
    "int8.tflite": {"size_bytes": {"value": 13680, "unit": "bytes"},
                    "gzip_bytes": {"value": 4321, "unit": "bytes"},
                    "latency_ms": {"value": 0.0815, "unit": "ms"}},
    "float32.tflite": {"size_bytes": 40000, "gzip_bytes": 15000, "latency_ms": 0.09},
}


def _target(engine="litert", arch="x86_64", delegate="xnnpack"):
    device = MicroDevice(kind="tflm") if engine == "tflm" else LocalDevice(kind="local")
    return TargetProfile(name="t", description="test", arch=arch, cpu="x",
                         runtime=RuntimeSpec(engine=engine, delegate=delegate), device=device)


def test_advise_quotes_size_and_latency_when_unstructured_sparsity_on_xnnpack_x86():
    out = advise(Recipe(), _target(), MEASURED)
    assert len(out) == 1
    assert "unstructured 75% sparsity cannot speed up t (XNNPACK on x86_64)" in out[0]
    assert "13,680 B raw, 4,321 B gzip, 0.082 ms median" in out[0]
    assert "float32.tflite: 40,000 B raw, 15,000 B gzip, 0.090 ms median" in out[0]


def test_advise_says_tflm_kernels_are_dense_when_block_sparsity_on_a_microcontroller():
    recipe = Recipe(prune=PruneSpec(structure="block", block_size=(16, 1)))
    out = advise(recipe, _target(engine="tflm", arch="cortex-m"), MEASURED)
    assert "block 16x1 sparsity cannot speed up t: TFLite Micro" in out[0]


def test_advise_flags_int8_sparse_encoding_with_xnnpack_on_arm():
    measured = {"int8.tflite": {**MEASURED["int8.tflite"], "encoding": "sparse"}}
    out = advise(Recipe(), _target(arch="aarch64"), measured)
    assert any("no sparse int8 kernels" in line for line in out)
    assert any("densifies when the model loads" in line for line in out)


def test_advise_says_clustering_pays_only_compressed_and_quotes_the_gzip_ratio():
    out = advise(Recipe(prune=None, cluster=ClusterSpec(number_of_clusters=16)), _target(), MEASURED)
    assert len(out) == 1
    assert "clustering to 16 values makes int8.tflite no smaller" in out[0]
    assert "gzip keeps 32% of the bytes" in out[0]


def test_advise_is_silent_when_channel_pruning_on_xnnpack():
    assert advise(Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5)), _target(),
                  MEASURED) == []
