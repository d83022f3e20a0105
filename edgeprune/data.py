"""Datasets: a user's ``.npz`` file, checked against the model before any work."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .types import Dataset

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
VALIDATION_FRACTION = 0.1


def array_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_npz(path: str | Path, *, input_shape: tuple[int, ...], num_classes: int) -> Dataset:
    """Load ``x_train, y_train, x_test, y_test`` from ``path`` (no pickles) and check them.

    The last 10% of the training split becomes the validation split (used to
    monitor fine-tuning), so the test split stays held out.
    """
    path = Path(path)
    where = str(path)
    arrays = read_npz(path, REQUIRED_KEYS)

    x_train, y_train = _check_split(arrays["x_train"], arrays["y_train"], "train", where,
                                    input_shape, num_classes)
    x_test, y_test = _check_split(arrays["x_test"], arrays["y_test"], "test", where,
                                  input_shape, num_classes)
    n_val = max(1, int(round(len(x_train) * VALIDATION_FRACTION)))
    if len(x_train) - n_val < 1:
        raise InputError("x_train has too few samples to split off a validation set",
                         where=f"{where}: x_train", expected="at least 2 samples")
    return Dataset(x_train=x_train[:-n_val], y_train=y_train[:-n_val],
                   x_val=x_train[-n_val:], y_val=y_train[-n_val:],
                   x_test=x_test, y_test=y_test, num_classes=num_classes,
                   source=str(path.resolve()),
                   sha256=array_digest(x_train, y_train, x_test, y_test))


def read_npz(path: Path, required: tuple[str, ...] = REQUIRED_KEYS) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` at ``path`` (no pickles); ``required`` keys must be there.
    The archive and each array's header are checked before numpy reads any data."""
    where = str(path)
    if not path.is_file():
        raise InputError("no data file here", where=where, fix="pass an existing .npz with --data")
    _check_archive(path, where, required)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError("holds Python objects (pickled arrays), which are never loaded",
                             where=where, expected="numeric arrays",
                             fix="convert to numeric numpy arrays before saving") from None
        raise InputError(f"cannot be read as .npz ({exc})", where=where,
                         expected="a file written by numpy.savez",
                         fix="re-create the file; it may be truncated") from None
    except Exception as exc:  # zipfile, zlib and numpy raise many kinds for damaged files
        raise InputError(f"cannot be read as .npz ({type(exc).__name__}: {exc})", where=where,
                         expected="a file written by numpy.savez",
                         fix="re-create the file; it may be truncated") from None


def _check_archive(path: Path, where: str, required: tuple[str, ...]) -> None:
    """Before numpy reads anything: a zip archive holding the required arrays, each with a header
    whose shape fits in the bytes stored (so a damaged header cannot ask for terabytes)."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise InputError("this is a single .npy array, not an .npz archive", where=where,
                         expected="an .npz with x_train, y_train, x_test, y_test",
                         fix="save with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            missing = [k for k in required if f"{k}.npy" not in members]
            if missing:
                raise InputError(f"missing arrays: {', '.join(missing)}", where=where,
                                 expected=f"arrays named {', '.join(required)}",
                                 fix="save with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
            for name, info in members.items():
                if name.endswith(".npy"):
                    _check_member(zf, info, f"{where}: {name[:-4]}")
    except InputError:
        raise
    except Exception as exc:  # not a zip file, a damaged directory or header
        raise InputError(f"cannot be read as .npz ({type(exc).__name__}: {exc})", where=where,
                         expected="a file written by numpy.savez",
                         fix="re-create the file; it may be truncated") from None


def _check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> None:
    from numpy.lib import format as npy

    with zf.open(info) as fh:
        version = npy.read_magic(fh)
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _fortran, dtype = read(fh, max_header_size=10_000)
        header = fh.tell()
    if dtype.hasobject:
        raise InputError("holds Python objects (pickled arrays), which are never loaded",
                         where=where, expected="numeric arrays",
                         fix="convert to numeric numpy arrays before saving")
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed > info.file_size - header:
        raise InputError(f"its header declares shape {shape} ({needed:,} bytes) but the file holds "
                         f"{info.file_size - header:,} bytes", where=where,
                         expected="a complete array", fix="re-create the file; it is truncated or damaged")


def _check_split(x: np.ndarray, y: np.ndarray, split: str, where: str,
                 input_shape: tuple[int, ...], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = check_x(x, f"x_{split}", where, input_shape)
    return x, check_labels(y, len(x), f"y_{split}", where, num_classes)


def check_x(x: np.ndarray, xname: str, where: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as float32, checked: numeric, shaped like the model's input, finite, not empty."""
    if x.dtype.kind not in "fiu":
        raise InputError(f"{xname} has dtype {x.dtype}", where=f"{where}: {xname}",
                         expected="a numeric array (float32 preferred)")
    if tuple(x.shape[1:]) != tuple(input_shape) or x.ndim < 2:
        raise InputError(f"{xname} has shape {x.shape}", where=f"{where}: {xname}",
                         expected=f"(N, {', '.join(map(str, input_shape))}) to match the model's input",
                         fix="reshape the data, or check that the model and data belong together")
    if len(x) == 0:
        raise InputError(f"{xname} is empty", where=f"{where}: {xname}", expected="at least 1 sample")
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise InputError(f"{xname} holds {bad} values that are NaN, infinite or beyond float32's "
                         "range (+-3.4e38)", where=f"{where}: {xname}",
                         expected="finite float32 values", fix="clean, impute or rescale them before exporting")
    return x


def check_labels(y: np.ndarray, n: int, yname: str, where: str, num_classes: int) -> np.ndarray:
    """Class labels as int64 in [0, num_classes): integer labels, or one-hot rows."""
    if y.ndim == 2 and y.shape[1] == num_classes and y.shape[1] > 1:
        y = np.argmax(y, axis=1)  # one-hot labels
    if y.ndim != 1 or len(y) != n:
        raise InputError(f"{yname} has shape {y.shape} for {n} samples",
                         where=f"{where}: {yname}",
                         expected=f"({n},) integer class labels, or ({n}, {num_classes}) one-hot")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise InputError(f"{yname} holds non-integer labels", where=f"{where}: {yname}",
                             expected="integer class labels")
    elif y.dtype.kind not in "iu":
        raise InputError(f"{yname} has dtype {y.dtype}", where=f"{where}: {yname}",
                         expected="integer class labels")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise InputError(f"{yname} has labels from {y.min()} to {y.max()}", where=f"{where}: {yname}",
                         expected=f"labels in [0, {num_classes - 1}] for the model's {num_classes} outputs")
    return y
