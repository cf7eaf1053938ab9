"""Rich progress for folds and epochs; quiet when output is not a terminal."""

from __future__ import annotations

import os
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def progress_enabled() -> bool:
    return os.environ.get("KCHEM_PROGRESS", "1") != "0" and console.is_terminal


class _FoldProgress:
    def __init__(self, progress: Progress | None, task_id):
        self._progress = progress
        self._task_id = task_id

    def advance(self, message: str) -> None:
        console.print(f"  {message}")
        if self._progress is not None:
            self._progress.advance(self._task_id)


@contextmanager
def fold_progress(n_folds: int):
    if not progress_enabled():
        yield _FoldProgress(None, None)
        return
    with Progress(
        TextColumn("[bold]folds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        yield _FoldProgress(progress, progress.add_task("folds", total=n_folds))


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
