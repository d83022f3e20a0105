"""An ``.npz`` of arrays (never pickles): ``x_train, y_train, x_test, y_test``, optionally
``x_val, y_val``; a multi-output model takes one target array per output and split,
named ``y_train/OUTPUT`` (``np.savez(f, **{"y_train/box": ...})``)."""

from __future__ import annotations

from pathlib import Path

from ..data import check_x, read_npz
from ..errors import InputError
from ..types import ModelSignature
from . import RawData


def target_keys(split: str, signature: ModelSignature) -> list[str]:
    if len(signature.outputs) == 1:
        return [f"y_{split}"]
    return [f"y_{split}/{o.name}" for o in signature.outputs]


def read_npz_data(path: Path, signature: ModelSignature) -> RawData:
    where = str(path)
    splits = ["train", "test"]
    required = ["x_train", "x_test"] + target_keys("train", signature) + target_keys("test", signature)
    arrays = read_npz(path, tuple(required))
    if "x_val" in arrays and all(k in arrays for k in target_keys("val", signature)):
        splits.insert(1, "val")
    elif "x_val" in arrays:
        raise InputError("x_val is given without its targets", where=where,
                         expected=f"arrays named {', '.join(target_keys('val', signature))} beside x_val",
                         fix="add them, or drop x_val (the last 10% of x_train then validates)")
    x = {s: check_x(arrays[f"x_{s}"], f"x_{s}", where, signature.input_shape) for s in splits}
    y, names = {}, {}
    for s in splits:
        names[s] = target_keys(s, signature)
        y[s] = [arrays[k] for k in names[s]]
    return RawData(x=x, y=y, names=names, source=str(path.resolve()), sha256=None, where=where,
                   kind="npz", settings={"validation": "x_val" if "val" in splits else
                                         "the last 10% of x_train"})
