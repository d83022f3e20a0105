"""Keras training and prediction over a Dataset: whole arrays when they are in memory (as
before), batch by batch from disk when the data was streamed."""

from __future__ import annotations

import numpy as np

PREDICT_CHUNK = 4096   # samples handed to model.predict at a time


def predict(model, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """The model's outputs on ``x`` as float32 arrays, one per output in the model's order,
    never converting more than PREDICT_CHUNK samples to a tensor at once."""
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(x), PREDICT_CHUNK):
        out = model.predict(np.asarray(x[start:start + PREDICT_CHUNK]), batch_size=batch_size, verbose=0)
        parts.append([np.asarray(o, np.float32) for o in (out if isinstance(out, (list, tuple)) else [out])])
    if not parts:
        return []
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def fit_arguments(data, batch_size: int, seed: int) -> dict:
    """Keyword arguments for ``model.fit``: arrays with Keras' own shuffling for data in
    memory; for streamed data, sequences that read shuffled batches from disk."""
    multi = isinstance(data.y_train, (tuple, list))
    pack = (lambda ys: list(ys)) if multi else (lambda ys: ys)
    if not data.streamed:
        return dict(x=data.x_train, y=pack(data.y_train), batch_size=batch_size, shuffle=True,
                    validation_data=(data.x_val, pack(data.y_val)))
    return dict(x=_sequence(data, "train", batch_size, seed, multi), shuffle=False,
                validation_data=_sequence(data, "val", batch_size, None, multi))


def _sequence(data, split: str, batch_size: int, seed: int | None, multi: bool):
    from .. import keras_env

    keras = keras_env.keras()
    x, ys = getattr(data, f"x_{split}"), data.targets(split)

    class Batches(keras.utils.Sequence):
        """Batches of the memory-mapped split; the training split is reshuffled each epoch
        with a generator seeded from the recipe's seed (sorted indices keep reads sequential)."""

        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.order = np.arange(len(x))
            self.on_epoch_end()

        def __len__(self):
            return (len(x) + batch_size - 1) // batch_size

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            targets = [np.asarray(y[idx]) for y in ys]
            return np.asarray(x[idx]), (targets if multi else targets[0])

        def on_epoch_end(self):
            if seed is not None:
                self.order = np.random.default_rng([seed, self.epoch]).permutation(len(x))
                self.epoch += 1

    return Batches()
