"""Firmware sources for a TFLite Micro model: the .tflite as a C array, its arena
size, its I/O and an op resolver with exactly the ops it uses.

``write_c_sources("dist/int8.tflite", "fw/", symbol="kws_model", arena_bytes=3008)``
writes, into ``fw/``:

``kws_model.h``
    C and C++: ``extern const unsigned char kws_model[KWS_MODEL_LEN]`` (16-byte
    aligned), ``KWS_MODEL_SHA256``, ``KWS_MODEL_SCHEMA_VERSION``,
    ``KWS_MODEL_ARENA_BYTES`` (measured minimum + headroom, rounded up to the
    alignment), ``KWS_MODEL_OP_COUNT`` and, per input and output ``i``,
    ``KWS_MODEL_INPUTi_{DIMS,ELEMENTS,CTYPE,SCALE,ZERO_POINT}`` and the shape array
    ``kws_model_input0_shape``.
``kws_model.c`` (or ``.cc``)
    the definitions; compiles as C11 or C++.
``kws_model_ops.h``
    C++ only: ``kws_model_OpResolver`` (a ``tflite::MicroMutableOpResolver`` of
    ``KWS_MODEL_OP_COUNT``) and ``kws_model_register_ops(resolver)``. Define
    ``EDGEPRUNE_TFLM_NAMESPACE`` before including it if your TFLM keeps the
    resolver outside namespace ``tflite``.
``kws_model.manifest.json``
    the same facts for build systems.

In the pipeline, :func:`firmware_artifact` does the same for an ``Artifact`` and
returns the ``c_array`` artifact (parent: the .tflite).

Every name starts with the symbol, so several models share one firmware. The
output depends only on the inputs (no timestamps): generating twice gives the
same bytes. Files are written to a temporary folder and then moved into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, UnsupportedError
from ..measure.tflite_graph import TensorInfo, TfliteGraph, describe_op, read_graph
from ..types import Artifact

MANIFEST_SCHEMA = "edgeprune.firmware/1"

_C_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_RESERVED = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "class", "namespace",
    "template", "this", "new", "delete", "operator", "private", "public", "protected",
    "virtual", "friend", "using", "bool", "true", "false", "try", "catch", "throw",
    "typename", "alignas", "alignof", "constexpr", "decltype", "noexcept", "nullptr",
    "static_assert", "thread_local", "tflite", "main",
}
_CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
           "int64": "int64_t", "float32": "float", "bool": "bool"}
_BYTES_PER_LINE = 12


@dataclass(frozen=True)
class ArenaSize:
    measured_bytes: int
    headroom_fraction: float
    alignment: int
    measured_by: str

    @property
    def bytes(self) -> int:
        """Measured minimum plus headroom, rounded up to the alignment."""
        grown = math.ceil(self.measured_bytes * (1.0 + self.headroom_fraction))
        return -(-grown // self.alignment) * self.alignment


def write_c_sources(tflite_path: str | Path, out_dir: str | Path, *, symbol: str = "g_model",
                    arena_bytes: int | None, headroom_fraction: float = 0.1,
                    alignment: int = 16, source_suffix: Literal[".c", ".cc"] = ".c") -> list[Path]:
    """Write the firmware sources for ``tflite_path`` into ``out_dir``.

    Args:
        tflite_path: the .tflite model (full int8 for most microcontrollers).
        out_dir: where the files go; created if missing. Existing files of the same
            names are replaced; nothing else there is touched.
        symbol: the C name of the model array and the prefix of every other name
            (macros use it in upper case). A C identifier of up to 63 characters.
        arena_bytes: the measured minimum tensor arena (``RunResult.arena_bytes`` of
            the tflm device); None measures it now with TFLite Micro.
        headroom_fraction: added to the minimum for ``<SYMBOL>_ARENA_BYTES``.
        alignment: of the model array and of the arena size; a power of two >= 4.
        source_suffix: ``.c`` (compiles as C11 or C++) or ``.cc``.

    Returns:
        [header, source, ops header, manifest], in that order.
    """
    tflite_path = Path(tflite_path)
    _check_options(symbol, arena_bytes, headroom_fraction, alignment, source_suffix)
    data = tflite_path.read_bytes()
    graph = read_graph(tflite_path)
    methods = _resolver_methods(graph, tflite_path)
    if arena_bytes is None:
        from ..runtimes.tflm import find_min_arena

        search = find_min_arena(tflite_path, alignment=alignment)
        arena = ArenaSize(search.min_bytes, headroom_fraction, alignment, search.runtime)
    else:
        arena = ArenaSize(arena_bytes, headroom_fraction, alignment, "given by the caller")
    sha = hashlib.sha256(data).hexdigest()
    names = {"header": f"{symbol}.h", "source": f"{symbol}{source_suffix}",
             "ops_header": f"{symbol}_ops.h", "manifest": f"{symbol}.manifest.json"}
    texts = {
        "header": _header(symbol, tflite_path.name, sha, len(data), graph, arena, len(methods)),
        "source": _source(symbol, names["header"], tflite_path.name, data, graph, alignment),
        "ops_header": _ops_header(symbol, names["header"], methods),
        "manifest": _manifest(symbol, names, tflite_path.name, sha, len(data), graph, arena,
                              methods),
    }
    return _write_atomically(Path(out_dir), [(names[k], texts[k]) for k in
                                             ("header", "source", "ops_header", "manifest")])


def firmware_artifact(tflite: Artifact, out_dir: str | Path, *, symbol: str = "g_model",
                      arena_bytes: int | None, headroom_fraction: float = 0.1,
                      alignment: int = 16) -> Artifact:
    """:func:`write_c_sources` for a pipeline artifact; returns the ``c_array`` artifact.

    Its ``path`` is the manifest (which names the other files), its parent the .tflite.
    Its file size is not the flash size: that is ``settings["model_bytes"]``.
    """
    paths = write_c_sources(tflite.path, out_dir, symbol=symbol, arena_bytes=arena_bytes,
                            headroom_fraction=headroom_fraction, alignment=alignment)
    manifest = json.loads(paths[3].read_text())
    return Artifact(
        name=paths[3].name, path=paths[3], format="c_array", precision=tflite.precision,
        encoding=tflite.encoding, sha256=hashlib.sha256(paths[3].read_bytes()).hexdigest(),
        parent=tflite.name,
        settings={"symbol": symbol, "files": [p.name for p in paths],
                  "arena_bytes": manifest["arena"]["bytes"],
                  "arena_measured_bytes": manifest["arena"]["measured_bytes"],
                  "headroom_fraction": headroom_fraction, "alignment": alignment,
                  "model_bytes": manifest["model"]["bytes"],
                  "model_sha256": manifest["model"]["sha256"]})


def _check_options(symbol, arena_bytes, headroom_fraction, alignment, source_suffix) -> None:
    if not _C_IDENTIFIER.match(symbol) or symbol.lower() in _RESERVED:
        raise ConfigError(f"symbol = {symbol!r} is not a usable C identifier", where="symbol",
                          expected="a letter, then letters, digits or '_' (at most 63), "
                                   "not a C/C++ keyword",
                          fix="pick a name such as kws_model")
    if arena_bytes is not None and (not isinstance(arena_bytes, int) or arena_bytes < 1):
        raise ConfigError(f"arena_bytes = {arena_bytes!r} is not a positive byte count",
                          where="arena_bytes", fix="pass RunResult.arena_bytes, or None to measure")
    if not 0.0 <= headroom_fraction <= 10.0:
        raise ConfigError(f"headroom_fraction = {headroom_fraction} is out of range",
                          where="headroom_fraction", expected="0.0 to 10.0 (0.1 = 10 %)")
    if alignment < 4 or alignment & (alignment - 1):
        raise ConfigError(f"alignment = {alignment} is not a power of two >= 4",
                          where="alignment", expected="16 (TFLite Micro's default)")
    if source_suffix not in (".c", ".cc"):
        raise ConfigError(f"source_suffix = {source_suffix!r}", where="source_suffix",
                          expected="'.c' or '.cc'")


def _resolver_methods(graph: TfliteGraph, path: Path) -> list[tuple[str, str]]:
    from ..runtimes.tflm import RESOLVER_METHODS

    missing = [op for op in graph.ops if op.is_custom or op.name not in RESOLVER_METHODS]
    if missing:
        raise UnsupportedError(
            "no TFLite Micro resolver method registers "
            + ", ".join(describe_op(op) for op in missing),
            where=str(path), expected="builtin ops with a MicroMutableOpResolver Add method",
            fix="replace those layers, or register a custom kernel by hand after "
                "<symbol>_register_ops()")
    return [(name, RESOLVER_METHODS[name]) for name in graph.op_names()]


def _c_float(value: float) -> str:
    """A C float literal that reads back as the same float32 (9 significant digits)."""
    if not math.isfinite(value):
        raise UnsupportedError(f"a quantization scale is {value}", expected="a finite number",
                               fix="re-export the model; its quantization parameters are broken")
    text = format(value, ".9g")
    if not any(c in text for c in ".e"):
        text += ".0"
    return text + "f"


def _c_int(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def _tensor_macros(prefix: str, kind: str, i: int, t: TensorInfo) -> list[str]:
    m = f"{prefix}_{kind}{i}"
    ctype = _CTYPES.get(t.dtype)
    if ctype is None:
        raise UnsupportedError(f"{kind.lower()} {i} ({t.name}) has type {t.dtype}",
                               expected=", ".join(_CTYPES), fix="export with int8 or float32 I/O")
    return [f"#define {m}_DIMS {max(len(t.shape), 1)}",
            f"#define {m}_ELEMENTS {math.prod(t.shape) if t.shape else 1}",
            f"#define {m}_CTYPE {ctype}",
            f'#define {m}_TYPE_NAME "{t.dtype}"',
            f"#define {m}_SCALE {_c_float(t.scale)}",
            f"#define {m}_ZERO_POINT {_c_int(t.zero_point)}"]


def _header(symbol: str, model_name: str, sha: str, length: int, graph: TfliteGraph,
            arena: ArenaSize, op_count: int) -> str:
    p = symbol.upper()
    lines = [
        f"/* {symbol}.h: generated by edgeprune from {model_name}; do not edit.",
        f" * The model array and its facts. C and C++. Op resolver (C++): {symbol}_ops.h.",
        f" * Arena: {arena.measured_bytes} bytes measured ({arena.measured_by}),",
        f" * plus {arena.headroom_fraction:g} headroom, rounded up to {arena.alignment}. */",
        f"#ifndef {p}_H_",
        f"#define {p}_H_",
        "",
        "#include <stdint.h>",
        "",
        f"#define {p}_LEN {length}u",
        f"#define {p}_ALIGNMENT {arena.alignment}",
        f'#define {p}_SHA256 "{sha}"',
        f"#define {p}_SCHEMA_VERSION {graph.schema_version}",
        f"#define {p}_ARENA_MEASURED_BYTES {arena.measured_bytes}u",
        f"#define {p}_ARENA_BYTES {arena.bytes}u",
        f"#define {p}_OP_COUNT {op_count}",
        f"#define {p}_INPUT_COUNT {len(graph.inputs)}",
        f"#define {p}_OUTPUT_COUNT {len(graph.outputs)}",
    ]
    for kind, tensors in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)):
        for i, t in enumerate(tensors):
            lines += _tensor_macros(p, kind, i, t)
    lines += ["", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
              f"extern const unsigned char {symbol}[{p}_LEN];",
              f"extern const unsigned int {symbol}_len;"]
    for kind, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        for i, _ in enumerate(tensors):
            lines.append(f"extern const int {symbol}_{kind}{i}_shape[{p}_{kind.upper()}{i}_DIMS];")
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif  /* {p}_H_ */", ""]
    return "\n".join(lines)


def _source(symbol: str, header: str, model_name: str, data: bytes, graph: TfliteGraph,
            alignment: int) -> str:
    p = symbol.upper()
    lines = [
        f"/* {symbol}: {model_name} as a C array; generated by edgeprune, do not edit. */",
        f'#include "{header}"',
        "",
        "#if defined(__cplusplus)",
        f"#define {p}_ALIGNED_ alignas({alignment})",
        "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L",
        f"#define {p}_ALIGNED_ _Alignas({alignment})",
        "#else",
        f"#define {p}_ALIGNED_ __attribute__((aligned({alignment})))",
        "#endif",
        "",
        f"{p}_ALIGNED_ const unsigned char {symbol}[{p}_LEN] = {{",
    ]
    for start in range(0, len(data), _BYTES_PER_LINE):
        chunk = data[start:start + _BYTES_PER_LINE]
        lines.append("  " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    lines += ["};", "", f"const unsigned int {symbol}_len = {p}_LEN;"]
    for kind, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        for i, t in enumerate(tensors):
            dims = ", ".join(str(d) for d in t.shape) or "1"
            lines.append(f"const int {symbol}_{kind}{i}_shape[{p}_{kind.upper()}{i}_DIMS] = "
                         f"{{{dims}}};")
    lines.append("")
    return "\n".join(lines)


def _ops_header(symbol: str, header: str, methods: list[tuple[str, str]]) -> str:
    p = symbol.upper()
    lines = [
        f"/* {symbol}_ops.h: generated by edgeprune; do not edit. C++ only.",
        f" * A TFLite Micro op resolver with exactly the {len(methods)} ops {symbol} uses:",
        f" *   {symbol}_OpResolver resolver;",
        f" *   if ({symbol}_register_ops(resolver) != kTfLiteOk) {{ ... }} */",
        f"#ifndef {p}_OPS_H_",
        f"#define {p}_OPS_H_",
        "",
        "#ifndef __cplusplus",
        f'#error "{symbol}_ops.h is C++ (TFLite Micro\'s op resolver); from C include {header}"',
        "#endif",
        "",
        f'#include "{header}"',
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        "#ifndef EDGEPRUNE_TFLM_NAMESPACE",
        "#define EDGEPRUNE_TFLM_NAMESPACE tflite",
        "#endif",
        "",
        f"using {symbol}_OpResolver = EDGEPRUNE_TFLM_NAMESPACE::MicroMutableOpResolver<{p}_OP_COUNT>;",
        "",
        f"/* Registers {', '.join(name for name, _ in methods)}. */",
        f"inline TfLiteStatus {symbol}_register_ops({symbol}_OpResolver& resolver) {{",
    ]
    for _, method in methods:
        lines.append(f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;")
    lines += ["  return kTfLiteOk;", "}", "", f"#endif  /* {p}_OPS_H_ */", ""]
    return "\n".join(lines)


def _tensor_json(t: TensorInfo) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale,
            "zero_point": t.zero_point, "dynamic": t.is_dynamic}


def _manifest(symbol: str, names: dict[str, str], model_name: str, sha: str, length: int,
              graph: TfliteGraph, arena: ArenaSize, methods: list[tuple[str, str]]) -> str:
    p = symbol.upper()
    doc = {
        "schema": MANIFEST_SCHEMA,
        "symbol": symbol,
        "macro_prefix": p,
        "files": {k: v for k, v in names.items() if k != "manifest"},
        "sources": [names["source"]],
        "include_dirs": ["."],
        "model": {"file": model_name, "sha256": sha, "bytes": length,
                  "schema_version": graph.schema_version},
        "array": {"name": symbol, "length": length, "alignment": arena.alignment,
                  "length_macro": f"{p}_LEN"},
        "arena": {"bytes": arena.bytes, "measured_bytes": arena.measured_bytes,
                  "headroom_fraction": arena.headroom_fraction, "alignment": arena.alignment,
                  "measured_by": arena.measured_by, "macro": f"{p}_ARENA_BYTES"},
        "flash": {"model_bytes": length,
                  "note": "the model array only; TFLite Micro's code and kernels are extra"},
        "ops": [{"name": name, "resolver_method": method} for name, method in methods],
        "op_count": len(methods),
        "resolver": {"header": names["ops_header"], "type": f"{symbol}_OpResolver",
                     "register_function": f"{symbol}_register_ops", "language": "c++"},
        "inputs": [_tensor_json(t) for t in graph.inputs],
        "outputs": [_tensor_json(t) for t in graph.outputs],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _write_atomically(out_dir: Path, files: list[tuple[str, str]]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".edgeprune-fw-", dir=out_dir))
    try:
        for name, text in files:
            (staging / name).write_bytes(text.encode("utf-8"))
        placed = []
        for name, _ in files:
            os.replace(staging / name, out_dir / name)
            placed.append(out_dir / name)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)
