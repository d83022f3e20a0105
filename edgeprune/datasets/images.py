"""Images in class folders, read the way ``keras.utils.image_dataset_from_directory`` reads
them: one sub-folder per class, classes in sorted order (label = index), ``.bmp .gif .jpeg
.jpg .png`` files found recursively in sorted order, decoded to the model input's channels
(1 grayscale, 3 RGB, 4 RGBA), resized to its height and width (``data.interpolation``,
bilinear by default, aspect ratio not kept), then ``x * data.scale + data.offset``.

Two layouts:

- ``FOLDER/train/CLASS/...`` and ``FOLDER/test/CLASS/...`` (and ``FOLDER/val/CLASS/...``
  if there is one): the splits as given; without ``val/`` the last
  ``data.validation_fraction`` of the shuffled training files validate;
- ``FOLDER/CLASS/...``: every file shuffled with ``data.split_seed`` (NumPy's
  ``RandomState``, as Keras does), then the last ``test_fraction`` is the test split and
  the ``validation_fraction`` before it the validation split.

Training files are shuffled with ``data.split_seed`` in both layouts (Keras' default
``shuffle=True``); test files keep their sorted order. Images are decoded in batches and
written to a spill folder (see :mod:`.spill`), so the folder need not fit in memory. The
digest covers every file's path, label and bytes, and the reading settings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..types import ModelSignature
from . import RawData
from .spec import DataSpec
from .spill import SpillFolder

FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}
SCALE_FIX = ("add a [data] table to the recipe (--recipe FILE.toml): data = { scale = "
             "0.00392156862745098 } for a model trained on pixels in 0..1 (1/255), or scale = 1.0 "
             "when the model rescales 0..255 itself")


def _files(folder: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        found = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
        paths += found
        labels += [label] * len(found)
    return paths, labels


def _classes(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def plan_splits(root: Path, spec: DataSpec) -> tuple[dict[str, tuple[list[Path], list[int]]], list[str], str]:
    """Files and labels per split, the class names, and the layout's description."""
    given = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" in given and "test" in given:
        classes = _classes(given["train"])
        for split in ("val", "test"):
            extra = sorted(set(_classes(given[split])) - set(classes)) if split in given else []
            if extra:
                raise InputError(f"{split}/ has class folders that train/ lacks: {', '.join(extra)}",
                                 where=str(given[split]), expected="the same class folders as train/")
        splits = {s: _files(given[s], classes) for s in given}
        paths, labels = splits["train"]
        order = np.random.RandomState(spec.split_seed).permutation(len(paths))
        n_val = 0 if "val" in given else int(round(len(paths) * spec.validation_fraction))
        splits["train"] = ([paths[i] for i in order[:len(paths) - n_val]],
                           [labels[i] for i in order[:len(paths) - n_val]])
        if n_val:
            splits["val"] = ([paths[i] for i in order[len(paths) - n_val:]],
                             [labels[i] for i in order[len(paths) - n_val:]])
        layout = "train/ and test/ folders" + (" and val/" if "val" in given else
                                               f", validation {spec.validation_fraction:g} of train "
                                               f"split off with seed {spec.split_seed}")
    else:
        classes = _classes(root)
        paths, labels = _files(root, classes)
        order = np.random.RandomState(spec.split_seed).permutation(len(paths))
        n_test = int(round(len(paths) * spec.test_fraction))
        n_val = int(round(len(paths) * spec.validation_fraction))
        cut_val, cut_test = len(paths) - n_test - n_val, len(paths) - n_test
        pick = lambda idx: ([paths[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
        splits = {"train": pick(order[:cut_val]), "test": pick(sorted(order[cut_test:]))}
        if n_val:
            splits["val"] = pick(order[cut_val:cut_test])
        layout = (f"one folder of class folders, split with seed {spec.split_seed}: test "
                  f"{spec.test_fraction:g}, validation {spec.validation_fraction:g}")
    if len(classes) < 2:
        raise InputError(f"found {len(classes)} class folder(s)", where=str(root),
                         expected="one sub-folder per class (at least 2), or train/ and test/ folders "
                                  "holding them")
    for split in ("train", "test"):
        if not splits.get(split, ([], []))[0]:
            raise InputError(f"no images for the {split} split", where=str(root),
                             expected=f"files ending in {', '.join(FORMATS)} in the class folders")
    return splits, classes, layout


def read_image_folders(root: Path, signature: ModelSignature, spec: DataSpec, log) -> RawData:
    shape = signature.input_shape
    if len(shape) != 3 or shape[-1] not in COLOR_MODES:
        raise InputError(f"the model's input is {shape}", where=str(root),
                         expected="(height, width, channels) with 1, 3 or 4 channels to read images into")
    if spec.scale is None:
        raise ConfigError("image folders need the pixel scaling stated", where="recipe.data.scale",
                          expected="the factor that maps pixel values 0..255 to the model's inputs",
                          fix=SCALE_FIX)
    splits, classes, layout = plan_splits(root, spec)
    out = signature.outputs[0].shape if len(signature.outputs) == 1 else None
    if out is not None and len(out) == 1 and out[0] != len(classes):
        raise InputError(f"found {len(classes)} class folders ({', '.join(classes[:8])}"
                         f"{', ...' if len(classes) > 8 else ''}), the model has {out[0]} outputs",
                         where=str(root), expected=f"{out[0]} class folders, one per model output")
    spill = SpillFolder()
    files_digest = hashlib.sha256()
    x, y, names = {}, {}, {}
    for split, (paths, labels) in splits.items():
        log(f"reading {len(paths)} {split} images from {root}")
        x[split] = _decode(paths, shape, spec, spill.array(f"x_{split}"), root)
        y[split] = [np.asarray(labels, np.int64)]
        names[split] = [f"{split}/ labels"]
        for path, label in zip(paths, labels):
            files_digest.update(f"{split}\0{path.relative_to(root)}\0{label}\0".encode())
            files_digest.update(path.read_bytes())
    settings = {"layout": layout, "classes": classes, "color_mode": COLOR_MODES[shape[-1]],
                "image_size": list(shape[:2]), "interpolation": spec.interpolation,
                "scale": spec.scale, "offset": spec.offset, "split_seed": spec.split_seed,
                "files": {s: len(p) for s, (p, _) in splits.items()}}
    files_digest.update(repr(sorted(settings.items())).encode())
    return RawData(x=x, y=y, names=names, source=str(root.resolve()), sha256=files_digest.hexdigest(),
                   where=str(root), kind="images", settings=settings, keepalive=(spill,))


def _decode(paths: list[Path], shape, spec: DataSpec, sink, root: Path) -> np.ndarray:
    from .. import keras_env

    tf = keras_env.tf()
    height, width, channels = shape

    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image = tf.image.resize(image, (height, width), method=spec.interpolation)
        return tf.cast(image, tf.float32) * spec.scale + spec.offset

    names = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    images = names.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    try:
        for batch in images.batch(spec.batch_size):
            sink.append(batch.numpy().astype(np.float32))
    except tf.errors.OpError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"an image could not be decoded: {first[:300]}", where=str(root),
                         expected=f"readable {', '.join(FORMATS)} files") from None
    return sink.close()
