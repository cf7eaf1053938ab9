"""Apply a per-row function to a dataset with a progress bar; bad rows become `Skip`s."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from keras_chem.data.types import Skip


def progress_enabled() -> bool:
    """Progress bars show only on a terminal, and never with KCHEM_PROGRESS=0."""
    if os.environ.get("KCHEM_PROGRESS", "1").strip() == "0":
        return False
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


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
    `fn` becomes `Skip(row_id, "ExceptionType: message")`; it never stops the run.
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
            except Exception as error:
                value, reason = None, f"{type(error).__name__}: {error}"
            if value is None:
                skips.append(Skip(str(row_id), _one_line(reason or "no value returned")))
            else:
                kept.append(index)
                values.append(value)
            progress.advance(task)
    return np.asarray(kept, dtype=np.int64), values, skips
