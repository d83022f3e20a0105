"""Progress lines with elapsed time, and bars where the length is known.

A :class:`Reporter` is the ``log`` callable the pipeline already takes
(``ExportOptions.log``): every line it prints starts with the seconds since the run
began, ``[  12.3s] ...``. While one is :func:`active`, the stages that take long
announce themselves (:func:`stage`) and Keras fine-tuning reports each epoch's loss and
metric (:func:`keras_callbacks`). On a terminal, stages show a spinner and fine-tuning
a rich progress bar; elsewhere (CI logs, pipes) plain lines only.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

LINE_PREFIX = r"^\[ *\d+\.\ds\] "   # what every progress line starts with (tests whitelist it)

ANNOUNCE_AFTER_S = 1.0

_active: "Reporter | None" = None


class Reporter:
    def __init__(self, sink: Callable[[str], None] | None = None, tty: bool | None = None):
        from . import quiet

        self.started = time.perf_counter()
        self.sink = sink or quiet.say
        stream = quiet.console()
        self.tty = (quiet.level() != "quiet" and _isatty(stream)) if tty is None else tty
        self._rich = None

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.started:6.1f}s] {msg}"
        if self._rich is not None:
            self._rich.console.print(line, markup=False, highlight=False)
        else:
            self.sink(line)

    def rich_console(self):
        from rich.console import Console

        from . import quiet

        return Console(file=quiet.console(), highlight=False)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def active() -> Reporter | None:
    return _active


@contextmanager
def activate(reporter: Reporter) -> Iterator[Reporter]:
    global _active
    previous, _active = _active, reporter
    try:
        yield reporter
    finally:
        _active = previous


@contextmanager
def stage(name: str, log: Callable[[str], None] | None = None, start: bool = True,
          done: bool = True) -> Iterator[None]:
    """Announce a stage that takes over a second (on a terminal, a spinner at once; in
    plain output, a line once it has run for a second) and say how long it took.
    ``start=False``: no opening line in plain output; ``done=False``: the caller prints
    its own closing line."""
    rep = _active
    say = log or rep
    if say is None:
        yield
        return
    t0 = time.perf_counter()
    if rep is not None and rep.tty and rep._rich is None:
        with rep.rich_console().status(f"{name} ...", spinner="dots") as status:
            rep._rich = status            # lines print above the spinner
            try:
                yield
            finally:
                rep._rich = None
    else:
        # Plain output: the opening line only once the stage has run for a second.
        timer = threading.Timer(ANNOUNCE_AFTER_S, say, (f"{name} ...",)) if start else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
    took = time.perf_counter() - t0
    if done and took >= 1.0:
        say(f"{name}: done in {took:.1f}s")


def keras_callbacks(phase: str) -> list[Any]:
    """A tf_keras callback reporting each epoch (loss, metric, time) to the active reporter."""
    rep = _active
    if rep is None:
        return []
    from .keras_env import keras

    k = keras()

    class _Epochs(k.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epochs = self.params.get("epochs") or 0
            steps = self.params.get("steps")
            self.bar = None
            if rep.tty and steps and rep._rich is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                    MofNCompleteColumn(), TimeElapsedColumn(),
                                    console=rep.rich_console(), transient=True)
                self.task = self.bar.add_task(f"{phase} epoch 1/{self.epochs}", total=steps * self.epochs)
                self.bar.start()
                rep._rich = self.bar

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            if self.bar is not None:
                self.bar.update(self.task, description=f"{phase} epoch {epoch + 1}/{self.epochs}")

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.advance(self.task)

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{key} {float(value):.4f}" for key, value in (logs or {}).items()
                              if not key.startswith("val_"))
            val = ", ".join(f"{key} {float(value):.4f}" for key, value in (logs or {}).items()
                            if key.startswith("val_"))
            rep(f"{phase} epoch {epoch + 1}/{self.epochs}: {shown}" + (f"; {val}" if val else "")
                + f" ({time.perf_counter() - self.t0:.1f}s)")

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.stop()
                rep._rich = None

    return [_Epochs()]
