"""Advice on compression that cannot pay on the chosen target, from what was measured.

Zeros only save time where a kernel skips them, and repeated values only save bytes
where the bytes are compressed. :func:`advise` says what this run's files did:

- sparsity with LiteRT: from the deployed file's runtime probe (``runtime_probe``, made
  while choosing its encoding on this machine with the target's delegate): whether the
  sparse encoding loaded, which ops the delegate took and which read sparse weights, and
  both encodings' measured invoke times. Nothing is said from a general rule about
  delegates, because the rule is per op and per file (the same int8 sparse encoding
  loads for one model and is rejected for another);
- sparsity on TFLite Micro (no sparse tensors: the file is always dense, and the flash
  holds the dense array) and on onnxruntime (the .onnx holds dense initializers);
- clustering where the model is not stored or shipped compressed: the file keeps one
  value per weight, so only the gzip size shrinks; and, where the deployed file's
  kernels were counted (``kernel_values``), whether they kept the clusters' values.

``measurements`` maps an artifact name (``"int8.tflite"``, ``"float32.tflite"``,
``"baseline.keras"``...) to its figures, as in report.json (``{"size_bytes": {"value":
..}, "gzip_bytes": .., "latency_ms": ..}``) or as plain numbers; optional entries:
``"encoding"`` ("dense" | "sparse"), ``"encoding_reason"``, ``"runtime_probe"``
(encoding -> :meth:`edgeprune.runtimes.probe.Probe.summary`) and ``"kernel_values"``
(kernel -> distinct values, :func:`edgeprune.measure.breakdown.kernel_values_tflite`). A missing figure is left
out of the message, never invented.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..recipe import Recipe

Measurements = Mapping[str, Mapping[str, Any]]


def _value(measurements: Measurements, artifact: str, figure: str) -> float | None:
    entry = measurements.get(artifact, {}).get(figure)
    if isinstance(entry, Mapping):
        entry = entry.get("value")
    return float(entry) if isinstance(entry, (int, float)) else None


def _quote(measurements: Measurements, artifact: str) -> str:
    """``int8.tflite: 12,345 B raw, 4,321 B gzip, 0.081 ms median``, from what was measured."""
    parts = []
    size = _value(measurements, artifact, "size_bytes")
    gz = _value(measurements, artifact, "gzip_bytes")
    latency = _value(measurements, artifact, "latency_ms")
    if size is not None:
        parts.append(f"{size:,.0f} B raw")
    if gz is not None:
        parts.append(f"{gz:,.0f} B gzip")
    if latency is not None:
        parts.append(f"{latency:.3f} ms median")
    return f"{artifact}: {', '.join(parts)}" if parts else f"{artifact}: not measured"


def _quotes(measurements: Measurements, *artifacts: str) -> str:
    found = [a for a in dict.fromkeys(artifacts) if a in measurements]
    return "; ".join(_quote(measurements, a) for a in found) if found else "no measurements given"


def _sparsity_kind(recipe: Recipe) -> str | None:
    prune = recipe.prune
    if prune is not None and prune.structure == "channel" and prune.then_sparsity is not None:
        return f"unstructured {prune.then_sparsity:.0%} sparsity (after channel pruning)"
    if prune is None or prune.structure == "channel":
        return None
    if prune.structure == "block":
        return f"block {prune.block_size[0]}x{prune.block_size[1]} sparsity"
    if prune.structure == "m_by_n":
        return f"{prune.m_by_n[0]}:{prune.m_by_n[1]} sparsity"
    return f"unstructured {prune.final_sparsity:.0%} sparsity"


def advise(recipe: Recipe, target_profile, measurements: Measurements) -> list[str]:
    """Sentences for the report's ``advice``: one per technique that cannot pay on the target."""
    out: list[str] = []
    deploy = recipe.deploy
    precision = deploy.split(".")[0]
    engine = target_profile.runtime.engine
    name = target_profile.name
    sparsity = _sparsity_kind(recipe)
    dense_twin = f"{precision}.{deploy.split('.')[1]}"
    evidence = _quotes(measurements, deploy, "float32.tflite", "baseline.keras")

    if sparsity and engine == "tflm":
        out.append(
            f"{sparsity} cannot speed up {name}: TFLite Micro has no sparse tensors, so the file "
            f"is dense and the flash holds every zero ({evidence}). The zeros only help if the "
            "firmware stores the model compressed. To cut compute and flash, remove channels "
            '(prune.structure = "channel") or shrink the model.')
    elif sparsity and engine == "litert":
        out.extend(_litert_sparsity(sparsity, deploy, target_profile, measurements))
    elif sparsity and engine == "onnxruntime":
        out.append(
            f"{sparsity} cannot shrink {deploy} on {name}: the .onnx stores every zero as a "
            f"dense initializer ({_quotes(measurements, deploy, 'float32.onnx', 'baseline.keras')}). "
            'Only the gzip size shrinks; to cut compute use prune.structure = "channel".')

    if recipe.cluster is not None:
        size = _value(measurements, dense_twin, "size_bytes")
        gz = _value(measurements, dense_twin, "gzip_bytes")
        ratio = f" (gzip keeps {gz / size:.0%} of the bytes)" if size and gz else ""
        where = ("the flash holds the raw array" if engine == "tflm"
                 else "the runtime loads the raw file")
        out.append(
            f"clustering to {recipe.cluster.number_of_clusters} values makes {deploy} no smaller "
            f"and no faster on {name}: the file still holds one value per weight and {where}"
            f"{ratio}: {_quote(measurements, dense_twin)}. It pays only where the model is "
            "stored or shipped compressed (an OTA update, a compressed flash image).")
        kept = _kernel_values(recipe, measurements.get(deploy, {}).get("kernel_values"))
        if kept:
            out[-1] += " " + kept
    return out


def _kernel_values(recipe: Recipe, values: Mapping[str, int] | None) -> str:
    """What the deployed file's conv and dense kernels hold (``kernel_values``: distinct
    values per kernel, measured in the file), against the clusters asked for."""
    if not values:
        return ""
    clusters = recipe.cluster.number_of_clusters
    limit = clusters + 1      # and a zero: pruned weights, or a centroid that quantizes to 0
    over = {name: n for name, n in values.items() if n > limit}
    if not over:
        return (f"Measured in the file: each of its {len(values)} conv and dense kernels holds at "
                f"most {max(values.values())} distinct values.")
    causes = []
    if recipe.deploy == "int8.tflite" and recipe.int8_per_channel:
        causes.append("per-channel int8 weight scales map each channel's clusters to other integers "
                      "(int8_per_channel = false keeps them)")
    if recipe.qat is not None:
        causes.append("quantization-aware training quantizes each Conv2D kernel per channel "
                      "(tfmot's 8-bit scheme, whatever int8_per_channel says), which maps a channel "
                      "without the largest clusters to other integers")
    if not recipe.cluster.fold_batchnorm:
        causes.append("the converter folds each BatchNormalization into the kernel before it, "
                      "scaling each channel's values apart (cluster.fold_batchnorm = true folds "
                      "it before clustering)")
    causes.append("a layer tfmot leaves unclustered, or a BatchNormalization that could not be "
                  "folded (see the report's compression notes)")
    return (f"Measured in the file: {len(over)} of its {len(values)} conv and dense kernels hold "
            f"more than {limit} distinct values (up to {max(over.values())}), so gzip sees fewer "
            f"repeats than {clusters} clusters would give; possible causes: {'; '.join(causes)}.")


def _litert_sparsity(sparsity: str, deploy: str, target_profile, measurements: Measurements) -> list[str]:
    """What the deployed .tflite's two encodings did on this machine, as measured."""
    entry = measurements.get(deploy, {})
    runs = entry.get("runtime_probe") or {}
    delegate = target_profile.runtime.delegate
    encoding = entry.get("encoding", "dense")
    dense, sparse = runs.get("dense"), runs.get("sparse")
    if sparse is None:
        reason = entry.get("encoding_reason") or "dense"
        return [f"{sparsity}: {deploy} stores its zeros (dense encoding: {reason}), so only its "
                f"gzip size shrinks ({_quote(measurements, deploy)}). For less compute, remove "
                'channels (prune.structure = "channel").']
    where = f"measured on this machine with LiteRT, delegate {delegate!r}"
    sparse_ops = ", ".join(sparse.get("sparse_weight_ops") or []) or "none"
    if not sparse.get("ran"):
        at = f" at {sparse['failing_op']}" if sparse.get("failing_op") else ""
        return [f"{deploy}: its sparse encoding (sparse weights in {sparse_ops}) failed{at} ({where}: "
                f"{(sparse.get('error') or '').splitlines()[0][:160]}), so the dense file is deployed "
                f"and only its gzip size shrinks ({_quote(measurements, deploy)}). Other ops or "
                "another block structure may load; this file did not."]
    took = f"the delegate took {sparse['ops_delegated']} of {sparse['ops_total']} ops"
    times, pays = "", "it saves file bytes; its time was not measured"
    if sparse.get("latency_ms") is not None and dense and dense.get("latency_ms") is not None:
        ls, ld = sparse["latency_ms"], dense["latency_ms"]
        faster = ls < ld * 0.95
        times = (f"; sparse {ls:.4f} ms vs dense {ld:.4f} ms median per invoke: "
                 + ("faster" if faster else "slower" if ls > ld * 1.05 else "no faster"))
        pays = "it saves file bytes and time here" if faster else "it saves file bytes, not time"
    return [f"{deploy} in the sparse encoding ({where}): it loads, {took} (sparse weights in "
            f"{sparse_ops}){times}; {pays}. Deployed: the {encoding} file "
            f"({_quote(measurements, deploy)})."]
