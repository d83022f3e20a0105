"""A user's data loader, ``--data MODULE:FUNCTION`` (command line or Python API only).

``FUNCTION()`` returns a mapping with ``"train"`` and ``"test"`` (and optionally
``"val"``), each one of:

- a ``tf.data.Dataset`` of ``(x, y)``, batched or not;
- a pair ``(x, y)`` of arrays;
- any iterable of ``(x, y)`` batches of arrays.

``y`` is an array for a single-output model; for several outputs, a tuple in the model's
output order or a dict keyed by output name. The batches are read once, in the order
they come: checked against the model's input, hashed, and written to a spill folder
(:mod:`.spill`), so the data need not fit in memory. Random augmentation in the loader is
therefore applied once; shuffle in the loader if the order matters (the digest then
changes with it).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..data import check_x
from ..errors import InputError
from ..types import ModelSignature
from ..user_code import import_callable
from . import RawData
from .spec import DataSpec
from .spill import SpillFolder


def read_loader(spec_or_fn: str | Callable, signature: ModelSignature, spec: DataSpec, log) -> RawData:
    from .. import keras_env

    keras_env.tf()  # the loader's own `import tensorflow` must see tf_keras selected
    fn, origin = import_callable(spec_or_fn, what="data loader", where="--data")
    try:
        splits = fn()
    except Exception as exc:
        raise InputError(f"the loader raised {type(exc).__name__}: {exc}", where=origin,
                         expected="FUNCTION() returning {'train': ..., 'test': ...}") from None
    if not isinstance(splits, Mapping) or not {"train", "test"} <= set(splits):
        raise InputError(f"the loader returned {type(splits).__name__}"
                         f"{' with keys ' + ', '.join(map(str, splits)) if isinstance(splits, Mapping) else ''}",
                         where=origin, expected="a mapping with 'train' and 'test' (and optionally 'val')")
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown:
        raise InputError(f"the loader returned unknown splits: {', '.join(map(str, unknown))}",
                         where=origin, expected="'train', 'test' and optionally 'val'")
    spill = SpillFolder()
    x, y, names = {}, {}, {}
    for split in ("train", "val", "test"):
        if split in splits:
            log(f"reading the {split} split from {origin}")
            x[split], y[split] = _spill_split(splits[split], split, signature, spec, spill, origin)
            names[split] = _target_names(split, signature)
    return RawData(x=x, y=y, names=names, source=f"loader {origin}", sha256=spill.digest.hexdigest(),
                   where=origin, kind="loader",
                   settings={"loader": origin, "samples": {s: len(a) for s, a in x.items()}},
                   keepalive=(spill,))


def _target_names(split: str, signature: ModelSignature) -> list[str]:
    if len(signature.outputs) == 1:
        return [f"y of the {split} split"]
    return [f"y[{o.name!r}] of the {split} split" for o in signature.outputs]


def _batches(value: Any, signature: ModelSignature, batch_size: int) -> Iterable:
    if type(value).__module__.startswith("tensorflow") and hasattr(value, "element_spec"):
        x_spec = value.element_spec[0] if isinstance(value.element_spec, tuple) else None
        if x_spec is not None and len(x_spec.shape) == len(signature.input_shape):
            value = value.batch(batch_size)
        return value.as_numpy_iterator()
    if isinstance(value, tuple) and len(value) == 2 and hasattr(value[0], "shape"):
        x_all, y_all = value
        return ((x_all[i:i + batch_size], _slice(y_all, i, i + batch_size))
                for i in range(0, len(x_all), batch_size))
    return iter(value)


def _slice(y, start, stop):
    if isinstance(y, Mapping):
        return {k: v[start:stop] for k, v in y.items()}
    if isinstance(y, (tuple, list)):
        return [v[start:stop] for v in y]
    return y[start:stop]


def _per_output(y, signature: ModelSignature, where: str) -> list[np.ndarray]:
    names = [o.name for o in signature.outputs]
    if isinstance(y, Mapping):
        missing = [n for n in names if n not in y]
        if missing:
            raise InputError(f"y has keys {', '.join(map(str, y))}", where=where,
                             expected=f"one entry per model output: {', '.join(names)}")
        values = [y[n] for n in names]
    elif isinstance(y, (tuple, list)) and len(names) > 1:
        values = list(y)
    else:
        values = [y]
    if len(values) != len(names):
        raise InputError(f"y holds {len(values)} target arrays", where=where,
                         expected=f"{len(names)}, one per model output ({', '.join(names)})")
    out = []
    for v in values:
        v = np.asarray(v)
        out.append(v.astype(np.float32) if v.dtype.kind == "f" else
                   v.astype(np.int64) if v.dtype.kind in "iub" else v)
    return out


def _spill_split(value, split: str, signature: ModelSignature, spec: DataSpec, spill: SpillFolder,
                 origin: str) -> tuple[np.ndarray, list[np.ndarray]]:
    where = f"{origin} ({split} split)"
    x_sink = spill.array(f"x_{split}")
    y_sinks = [spill.array(f"y_{split}_{i}") for i in range(len(signature.outputs))]
    try:
        for i, item in enumerate(_batches(value, signature, spec.batch_size)):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise InputError(f"batch {i} is a {type(item).__name__}", where=where,
                                 expected="(x, y) pairs")
            xb = check_x(np.asarray(item[0]), f"x (batch {i})", where, signature.input_shape)
            ys = _per_output(item[1], signature, where)
            for yb in ys:
                if len(yb) != len(xb):
                    raise InputError(f"batch {i} has {len(xb)} inputs and {len(yb)} targets",
                                     where=where, expected="as many targets as inputs")
            x_sink.append(xb)
            for sink, yb in zip(y_sinks, ys):
                sink.append(yb)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"reading the {split} split failed: {type(exc).__name__}: {str(exc)[:300]}",
                         where=where) from None
    if x_sink.rows == 0:
        raise InputError(f"the {split} split is empty", where=where, expected="at least 1 sample")
    return x_sink.close(), [s.close() for s in y_sinks]
