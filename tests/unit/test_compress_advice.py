"""advise(): say what this run's files did on the target's runtime, quoting measured numbers."""

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


def _probe(ran=True, latency=0.08, error=None, failing_op=None, sparse_ops=("FULLY_CONNECTED (fc)",)):
    return {"loaded": ran, "ran": ran, "error": error, "failing_op": failing_op, "delegate": "xnnpack",
            "ops_delegated": 5 if ran else 0, "ops_total": 7 if ran else 0, "latency_ms": latency,
            "sparse_weight_ops": list(sparse_ops)}


def _with(runs, encoding, reason="x"):
    return {**MEASURED, "int8.tflite": {**MEASURED["int8.tflite"], "encoding": encoding,
                                        "encoding_reason": reason, "runtime_probe": runs}}


def test_advise_says_zeros_are_stored_when_the_dense_file_was_kept_unprobed():
    measured = _with({"dense": _probe(sparse_ops=())}, "dense", "sparse encoding not smaller")
    out = advise(Recipe(), _target(), measured)
    assert len(out) == 1
    assert out[0].startswith("unstructured 75% sparsity: int8.tflite stores its zeros "
                             "(dense encoding: sparse encoding not smaller)")
    assert "13,680 B raw, 4,321 B gzip, 0.082 ms median" in out[0]


def test_advise_names_the_failing_op_when_the_sparse_encoding_did_not_load():
    runs = {"dense": _probe(sparse_ops=()),
            "sparse": _probe(ran=False, error="failed to delegate FULLY_CONNECTED node #5",
                             failing_op="FULLY_CONNECTED (op 5, layer fc)")}
    out = advise(Recipe(), _target(arch="aarch64"), _with(runs, "dense"))
    assert len(out) == 1
    assert "failed at FULLY_CONNECTED (op 5, layer fc)" in out[0]
    assert "so the dense file is deployed" in out[0]


def test_advise_quotes_both_encodings_times_when_the_sparse_file_loaded():
    runs = {"dense": _probe(sparse_ops=(), latency=0.0800), "sparse": _probe(latency=0.0810)}
    out = advise(Recipe(), _target(), _with(runs, "sparse"))
    assert len(out) == 1
    assert "it loads, the delegate took 5 of 7 ops (sparse weights in FULLY_CONNECTED (fc))" in out[0]
    assert "sparse 0.0810 ms vs dense 0.0800 ms median per invoke: no faster" in out[0]
    assert "it saves file bytes, not time" in out[0]


def test_advise_never_states_a_rule_the_loaded_sparse_int8_file_contradicts():
    # An int8 file with unstructured sparsity that loaded under XNNPACK: no sentence may say
    # such files are rejected (the general rule the measurement contradicts).
    runs = {"dense": _probe(sparse_ops=()), "sparse": _probe()}
    text = " ".join(advise(Recipe(), _target(arch="aarch64"), _with(runs, "sparse")))
    assert "reject" not in text and "16" not in text and "it loads" in text


def test_advise_says_tflm_has_no_sparse_tensors_when_block_sparsity_on_a_microcontroller():
    recipe = Recipe(prune=PruneSpec(structure="block", block_size=(16, 1)))
    out = advise(recipe, _target(engine="tflm", arch="cortex-m"), MEASURED)
    assert "block 16x1 sparsity cannot speed up t: TFLite Micro has no sparse tensors" in out[0]


def test_advise_says_clustering_pays_only_compressed_and_quotes_the_gzip_ratio():
    out = advise(Recipe(prune=None, cluster=ClusterSpec(number_of_clusters=16)), _target(), MEASURED)
    assert len(out) == 1
    assert "clustering to 16 values makes int8.tflite no smaller" in out[0]
    assert "gzip keeps 32% of the bytes" in out[0]


def test_advise_says_whether_the_files_kernels_kept_the_clusters():
    kept = {**MEASURED, "int8.tflite": {**MEASURED["int8.tflite"], "kernel_values": {"#3": 9, "#5": 7}}}
    recipe = Recipe(cluster=ClusterSpec(number_of_clusters=8), int8_per_channel=False)
    out = advise(recipe, _target(), kept)
    assert out[-1].endswith("Measured in the file: each of its 2 conv and dense kernels holds at most 9 "
                            "distinct values.")   # 8 clusters and the zeros pruning kept

    spread = {**MEASURED, "int8.tflite": {**MEASURED["int8.tflite"], "kernel_values": {"#3": 90, "#5": 7}}}
    out = advise(Recipe(cluster=ClusterSpec(number_of_clusters=8, fold_batchnorm=False)), _target(), spread)
    assert "Measured in the file: 1 of its 2 conv and dense kernels hold more than 9 distinct values " \
           "(up to 90)" in out[-1]
    assert "per-channel int8 weight scales" in out[-1] and "cluster.fold_batchnorm = true" in out[-1]


def test_advise_speaks_of_the_sparsity_that_follows_channel_pruning():
    recipe = Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5, then_sparsity=0.8))
    out = advise(recipe, _target(engine="tflm", arch="cortex-m"), MEASURED)
    assert out[0].startswith("unstructured 80% sparsity (after channel pruning) cannot speed up t: "
                             "TFLite Micro has no sparse tensors")


def test_advise_is_silent_when_channel_pruning_on_xnnpack():
    assert advise(Recipe(prune=PruneSpec(structure="channel", final_sparsity=0.5)), _target(),
                  MEASURED) == []
