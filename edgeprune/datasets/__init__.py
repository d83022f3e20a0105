"""Where the data comes from: an ``.npz``, a folder of images, or a user's loader.

Each source yields the same :class:`RawData` (splits of inputs already checked against
the model's input, targets as the user gave them); the task is then read from the model
and those targets (:mod:`edgeprune.tasks.infer`), and :func:`finish` checks and converts
the targets for it and returns the :class:`~edgeprune.types.Dataset` every stage uses.

    --data FILE.npz            x_train, y_train, x_test, y_test (x_val, y_val optional);
                               a multi-output model: y_train/NAME, y_test/NAME per output
    --data FOLDER              image class folders: FOLDER/{train,test[,val]}/CLASS/*.png,
                               or FOLDER/CLASS/*.png split with recipe data.split_seed
    --data MODULE:FUNCTION     a loader (command line or Python API only), see loader.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import InputError
from .spec import DataSpec

if TYPE_CHECKING:  # numpy is imported where used: `edgeprune targets` reads recipes without it
    import numpy as np

    from ..types import Dataset, ModelSignature

VALIDATION_FRACTION = 0.1   # of the training split, when no validation split is given


@dataclass
class RawData:
    """Splits as read: x checked and float32; y per output, not yet converted for a task."""

    x: dict[str, np.ndarray]                  # "train", "test", and "val" when given
    y: dict[str, list[np.ndarray]]            # split -> one array per model output
    names: dict[str, list[str]]               # split -> how each y is named in messages
    source: str
    sha256: str | None                        # None: computed from the checked arrays
    where: str
    kind: str                                 # "npz" | "images" | "loader"
    settings: dict = field(default_factory=dict)
    keepalive: tuple = ()


def read_data(data: str | Path | Callable, signature: ModelSignature, spec: DataSpec,
              log=lambda msg: None) -> RawData:
    """Read ``data`` (a path, a folder, ``module:function`` or a callable) for a model."""
    if callable(data) or (":" in str(data) and not Path(str(data)).exists()):
        from .loader import read_loader

        return read_loader(data if callable(data) else str(data), signature, spec, log)
    path = Path(data)
    if path.is_dir():
        from .images import read_image_folders

        return read_image_folders(path, signature, spec, log)
    from .npz import read_npz_data

    return read_npz_data(path, signature)


def finish(raw: RawData, task) -> Dataset:
    """The :class:`Dataset` for ``task``: targets checked and converted, a validation split
    (the last 10% of the training split when none was given), the digest."""
    from ..tasks.infer import prepare_targets
    from ..types import Dataset

    y = {split: prepare_targets(task, raw.y[split], len(raw.x[split]), raw.where, raw.names[split])
         for split in raw.x}
    x_train, y_train = raw.x["train"], y["train"]
    if "val" in raw.x:
        x_val, y_val = raw.x["val"], y["val"]
    else:
        n_val = max(1, int(round(len(x_train) * VALIDATION_FRACTION)))
        if len(x_train) - n_val < 1:
            raise InputError("the training split has too few samples to split off a validation set",
                             where=f"{raw.where}: {raw.names['train'][0].replace('y_', 'x_')}",
                             expected="at least 2 samples")
        x_val, y_val = x_train[-n_val:], [t[-n_val:] for t in y_train]
        x_train, y_train = x_train[:-n_val], [t[:-n_val] for t in y_train]
    sha = raw.sha256
    if sha is None:
        from ..data import array_digest

        order = ["train", "val", "test"] if "val" in raw.x else ["train", "test"]
        sha = array_digest(*[a for s in order for a in (raw.x[s], *y[s])])
    pack = (lambda ys: tuple(ys)) if task.multi else (lambda ys: ys[0])
    return Dataset(x_train=x_train, y_train=pack(y_train), x_val=x_val, y_val=pack(y_val),
                   x_test=raw.x["test"], y_test=pack(y["test"]), num_classes=task.num_classes,
                   source=raw.source, sha256=sha, task=task,
                   settings={"kind": raw.kind, **raw.settings}, keepalive=raw.keepalive)


def load_dataset(data: Any, signature: ModelSignature, recipe, *, custom=None,
                 log=lambda msg: None) -> Dataset:
    """Read ``data``, infer the task from the model and its targets, and finish the data set."""
    import numpy as np

    from ..tasks.infer import infer_task

    raw = read_data(data, signature, recipe.data, log)
    sample = [np.asarray(y[:4096]) if isinstance(y, np.memmap) else y for y in raw.y["train"]]
    task = infer_task(signature.outputs, sample, recipe.task, raw.where, raw.names["train"], custom)
    return finish(raw, task)


__all__ = ["DataSpec", "RawData", "read_data", "finish", "load_dataset"]
