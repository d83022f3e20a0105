"""A runner's outputs per model output: the runner flattens and concatenates several
outputs into one array (see runner.py); this splits them back, in the task's order."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError


def split_outputs(outputs: np.ndarray, layout: Sequence[dict] | None, names: Sequence[str],
                  where: str = "") -> list[np.ndarray]:
    """``outputs`` (N, ...) as one array per name in ``names``: matched by name where the file
    names its outputs like the model (TFLite signatures, ONNX from tf2onnx), else in the
    file's order."""
    if not layout or len(layout) == 1:
        if len(names) != 1:
            raise InputError(f"the file has 1 output, the model {len(names)}", where=where)
        return [outputs]
    sizes = [int(np.prod(item["shape"])) for item in layout]
    if outputs.ndim != 2 or outputs.shape[1] != sum(sizes):
        raise RuntimeError(f"outputs of shape {outputs.shape} do not fit the layout {layout}")
    parts, start = {}, 0
    for item, size in zip(layout, sizes):
        parts[item["name"]] = outputs[:, start:start + size].reshape(len(outputs), *item["shape"])
        start += size
    if set(names) <= set(parts):
        return [parts[n] for n in names]
    if len(parts) != len(names):
        raise InputError(f"the file has {len(parts)} outputs ({', '.join(parts)}), the model "
                         f"{len(names)} ({', '.join(names)})", where=where)
    return list(parts.values())
