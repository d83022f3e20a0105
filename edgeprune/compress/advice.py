"""Advice on compression that cannot pay on the chosen target, quoting the measured numbers.

Zeros only save time where a kernel skips them, and repeated values only save bytes
where the bytes are compressed. :func:`advise` checks the recipe against what the
target's runtime does with them and says so when a technique cannot speed up (or
shrink) the deployed model there:

- unstructured / block / 2:4 sparsity on TFLite Micro: its kernels are dense, and the
  flash holds the dense array;
- the same on LiteRT with XNNPACK on x86: XNNPACK's sparse kernels cover only float
  models (sparse 1x1 convolutions in NCHW-able graphs), and not x86 at all;
- int8 weights in the TFLite sparse encoding with XNNPACK: no sparse int8 kernels; the
  delegate rejects them unless the blocks are tfmot's (16, 1), and then densifies;
- sparsity on onnxruntime's CPU execution provider: dense Conv/MatMul kernels;
- clustering where the model is not stored or shipped compressed: the file keeps one
  value per weight, so only the gzip size shrinks.

``measurements`` maps an artifact name (``"int8.tflite"``, ``"float32.tflite"``,
``"baseline.keras"``...) to its figures, as in report.json (``{"size_bytes": {"value":
..}, "gzip_bytes": .., "latency_ms": ..}``) or as plain numbers; an optional
``"encoding"`` entry ("dense" | "sparse") says how its weights are stored. A missing
figure is left out of the message, never invented.
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
    delegate = target_profile.runtime.delegate
    arch = target_profile.arch
    name = target_profile.name
    sparsity = _sparsity_kind(recipe)
    dense_twin = f"{precision}.{deploy.split('.')[1]}"
    evidence = _quotes(measurements, deploy, "float32.tflite", "baseline.keras")

    if sparsity and engine == "tflm":
        out.append(
            f"{sparsity} cannot speed up {name}: TFLite Micro's kernels are dense and skip no "
            f"zeros, and the flash holds the dense array ({evidence}). The zeros only help if the "
            "firmware stores the model compressed. To cut compute and flash, remove channels "
            '(prune.structure = "channel") or shrink the model.')
    elif sparsity and engine == "litert" and delegate == "xnnpack" and arch == "x86_64":
        out.append(
            f"{sparsity} cannot speed up {name} (XNNPACK on x86_64): XNNPACK's sparse kernels run "
            "only float models with sparse 1x1 convolutions, on ARM, never on x86 with AVX; the "
            f"{precision} kernels used here are dense ({evidence}). Only the gzip size shrinks; "
            'for speed use prune.structure = "channel".')
    elif sparsity and engine == "litert" and delegate == "xnnpack" and precision == "int8":
        out.append(
            f"{sparsity} cannot speed up the int8 model on {name}: XNNPACK has no sparse int8 "
            "kernels; int8 weights in the TFLite sparse encoding are rejected unless tfmot's "
            "block sparsity is (16, 1), and then densified at load time "
            f"({evidence}). The saving is in file size only; for speed use "
            'prune.structure = "channel", or deploy float32 on ARM with sparse 1x1 convolutions.')
    elif sparsity and engine == "onnxruntime":
        out.append(
            f"{sparsity} cannot speed up {name}: onnxruntime's CPU Conv and MatMul kernels are "
            f"dense ({_quotes(measurements, deploy, 'float32.onnx', 'baseline.keras')}). Only the "
            'gzip size shrinks; for speed use prune.structure = "channel".')

    encoding = measurements.get(deploy, {}).get("encoding")
    if encoding == "sparse" and engine == "litert" and delegate == "xnnpack":
        out.append(
            f"{deploy} is stored in the TFLite sparse encoding, which XNNPACK densifies when the "
            f"model loads: it saves file bytes, not RAM or time ({_quote(measurements, deploy)}).")

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
    return out
