"""Rich progress for featurization, folds and epochs; quiet when output is not a terminal.

A fold worker's stderr is a pipe to the runner; `KCHEM_FORCE_TERMINAL=1` (set by the runner
when its own stderr is a terminal) lets the worker draw its progress bars through it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True, force_terminal=True if os.environ.get("KCHEM_FORCE_TERMINAL") == "1" else None)
console.soft_wrap = not console.is_terminal  # a log file gets whole lines: no path broken at column 80


def progress_enabled() -> bool:
    return os.environ.get("KCHEM_PROGRESS", "1") != "0" and console.is_terminal


@contextmanager
def row_progress(description: str, total: int):
    """`with row_progress("featurizing", n) as advance: advance(done, total)`: one bar, and the
    featurizers' own bars held back meanwhile."""
    from keras_chem.featurizers.progress import quiet

    if not progress_enabled():
        with quiet():
            yield lambda done, total: None
        return
    with Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress, quiet():
        task = progress.add_task(description, total=total)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _epoch_callback_class():
    import keras

    class EpochProgress(keras.callbacks.Callback):
        """One progress line per fold: epoch, training and validation loss."""

        def __init__(self, label: str, epochs: int):
            super().__init__()
            self.label = label
            self.epochs = epochs
            self._progress = None

        def on_train_begin(self, logs=None):
            if progress_enabled():
                self._progress = Progress(
                    TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.description}"), console=console, transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task("", total=self.epochs)

        def on_epoch_end(self, epoch, logs=None):
            if self._progress is not None:
                logs = logs or {}
                self._progress.update(
                    self._task, advance=1,
                    description=f"loss {logs.get('loss', float('nan')):.4f} val_loss {logs.get('val_loss', float('nan')):.4f}",
                )

        def on_train_end(self, logs=None):
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    return EpochProgress


def __getattr__(name):
    if name == "EpochProgress":
        return _epoch_callback_class()
    raise AttributeError(name)
