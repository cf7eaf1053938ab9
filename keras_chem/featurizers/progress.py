"""Apply a per-row function to a dataset with a progress bar; bad rows become `Skip`s."""

from __future__ import annotations

import contextvars
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from keras_chem.data.types import Skip


_QUIET = contextvars.ContextVar("keras_chem_quiet_progress", default=False)


def progress_enabled() -> bool:
    """Progress bars show only on a terminal, never with KCHEM_PROGRESS=0, and not inside `quiet()`."""
    if os.environ.get("KCHEM_PROGRESS", "1").strip() == "0" or _QUIET.get():
        return False
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


@contextmanager
def quiet():
    """No featurizer progress bars inside (an outer bar is showing: rich draws one at a time)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


# Exceptions that mean a bug (in keras-chem or a library it calls), not a bad input row: they stop
# the run with the row named, instead of turning every row into a skipped one.
PROGRAMMING_ERRORS = (AttributeError, NameError, TypeError, ImportError, AssertionError, NotImplementedError, RecursionError)


class FeaturizerBug(RuntimeError):
    """A featurizer failed in a way no input should cause."""


def skip_reason(error: Exception, row_id: Any) -> str:
    """The one-line skip reason for `error` raised on one row; raises `FeaturizerBug` for a programming error."""
    if isinstance(error, PROGRAMMING_ERRORS):
        raise FeaturizerBug(
            f"internal error while featurizing row {row_id}: {type(error).__name__}: {_one_line(error)} "
            "(a bug, not a bad input; please report it)"
        ) from error
    return _one_line(f"{type(error).__name__}: {error}")


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def map_rows(
    ids: Sequence[Any],
    inputs: Sequence[Any],
    fn: Callable[[Any], tuple[Any | None, str | None]],
    description: str,
) -> tuple[np.ndarray, list, list[Skip]]:
    """`fn(input) -> (value, None)` or `(None, reason)` on every row, in order.

    Returns `(kept_indices int64, values, skips)`: the values of the rows that succeeded with
    their row indices, and one `Skip(row_id, reason)` per failed row. An exception raised by
    `fn` becomes `Skip(row_id, "ExceptionType: message")`, unless it is a programming error
    (`PROGRAMMING_ERRORS`), which stops the run as a `FeaturizerBug` naming the row.
    """
    if len(ids) != len(inputs):
        raise ValueError(f"{len(ids)} ids but {len(inputs)} inputs")
    kept: list[int] = []
    values: list = []
    skips: list[Skip] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, disable=not progress_enabled()) as progress:
        task = progress.add_task(description, total=len(inputs))
        for index, (row_id, item) in enumerate(zip(ids, inputs)):
            try:
                value, reason = fn(item)
            except Exception as error:  # noqa: BLE001 - bad input becomes a skip, a bug is raised by skip_reason
                value, reason = None, skip_reason(error, row_id)
            if value is None:
                skips.append(Skip(str(row_id), _one_line(reason or "no value returned")))
            else:
                kept.append(index)
                values.append(value)
            progress.advance(task)
    return np.asarray(kept, dtype=np.int64), values, skips
