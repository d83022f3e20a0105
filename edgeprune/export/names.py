"""Strip what no runtime reads from a .tflite file (``recipe.tflite_strip = true``).

The converter names every tensor after the TensorFlow ops fused into it, e.g.
``digits_cnn/conv2/Relu;digits_cnn/conv2/BiasAdd;digits_cnn/conv2/Conv2D;...``. No
runtime needs those names, and they take flash, as does the converter's own record of its version and options
(the ``CONVERSION_METADATA`` entry; report.json keeps the export's settings). Stripping
removes those, the other tensors' names and the model description, and keeps what a
caller or runtime does use: the names of the model's inputs and outputs and its
signature (so ``get_signature_runner`` and multi-output matching work as before), the
subgraph names and every other metadata entry (``min_runtime_version``, ...). Ops,
tensors and values are untouched, and every buffer stays aligned to 16 bytes as the
converter writes it (TFLite Micro reads weights in place)::

    stripped = strip_tflite(Path("model_int8.tflite").read_bytes())
    # reference model, int8 with int8 I/O: 17,896 -> 16,912 bytes, 2,837 -> 2,524 gzip

What is lost: per-op tables and ``edgeprune check``'s breakdown cannot name a stripped
tensor's Keras layer; they name it by its index (``#7``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedError

ALIGNMENT = 16    # the schema's force_align on Buffer.data, which the Python object API drops
DROPPED_METADATA = ("CONVERSION_METADATA",)   # what converted the file: read by no runtime


@dataclass(frozen=True)
class Stripped:
    data: bytes
    names: int                  # tensor names removed
    metadata: tuple[str, ...]   # metadata entries removed
    bytes_saved: int            # of the file, raw


def strip_tflite(data: bytes) -> Stripped:
    """``data`` (a .tflite flatbuffer) without the names of tensors that are neither a
    subgraph's input nor output, the model description and :data:`DROPPED_METADATA`."""
    from ..measure.tflite_graph import schema

    s = schema()
    model = s.ModelT.InitFromPackedBuf(data, 0)
    if any(getattr(b, "offset", 0) or getattr(b, "size", 0) for b in model.buffers or []):
        raise UnsupportedError("the file keeps its weights outside the flatbuffer (a model over "
                               "2 GB); its names cannot be stripped", where="recipe.tflite_strip",
                               fix="set recipe.tflite_strip = false")
    removed = 0
    for graph in model.subgraphs or []:
        kept = set(_ints(graph.inputs)) | set(_ints(graph.outputs))
        for index, tensor in enumerate(graph.tensors or []):
            if index not in kept and tensor.name:
                tensor.name = None
                removed += 1
    model.description = None
    dropped = [m for m in model.metadata or [] if _text(m.name) in DROPPED_METADATA]
    for entry in dropped:
        if sum(m.buffer == entry.buffer for m in model.metadata) == 1 and not any(
                t.buffer == entry.buffer for g in model.subgraphs or [] for t in g.tensors or []):
            model.buffers[entry.buffer].data = None     # the buffer stays: indices do not move
    if model.metadata is not None:
        model.metadata = [m for m in model.metadata if m not in dropped]
    out = _pack(s, model)
    return Stripped(out, removed, tuple(_text(m.name) for m in dropped), len(data) - len(out))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _pack(s, model) -> bytes:
    import flatbuffers

    model.buffers = [_AlignedBuffer.of(s, b) for b in model.buffers or []]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _AlignedBuffer:
    """A Buffer table whose data vector is aligned like the converter's (the generated
    ``BufferT.Pack`` aligns it to 1 byte only)."""

    def __init__(self, s, data):
        self.s, self.data = s, data

    @classmethod
    def of(cls, s, buffer) -> "_AlignedBuffer":
        data = buffer.data
        return cls(s, None if data is None or len(data) == 0 else bytes(bytearray(data)))

    def Pack(self, builder):   # noqa: N802 - the flatbuffers object API's name
        offset = None
        if self.data is not None:
            size = len(self.data)
            builder.StartVector(1, size, ALIGNMENT)
            builder.head -= size
            builder.Bytes[builder.head:builder.head + size] = self.data
            offset = builder.EndVector()
        self.s.BufferStart(builder)
        if offset is not None:
            self.s.BufferAddData(builder, offset)
        return self.s.BufferEnd(builder)
