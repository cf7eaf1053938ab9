"""Plain data containers shared by loaders, featurizers, splits and the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Skip:
    """One input row that was dropped, and why (one line, for `skipped.csv`)."""

    row_id: str
    reason: str


@dataclass
class Dataset:
    """A loaded dataset: one entry per row, in file order.

    `inputs` holds SMILES strings (input kind "smiles"), `ase.Atoms` (kind "structure")
    or formula strings (kind "composition"). `targets` is float32 `[n_rows, n_targets]`
    with NaN for a missing label; multiclass targets hold the class index as a float.
    """

    name: str
    input_kind: str
    task: str
    ids: list[str]
    inputs: list[Any]
    targets: np.ndarray
    target_names: list[str]
    class_names: list[str] | None = None
    skipped: list[Skip] = field(default_factory=list)
    rows: np.ndarray | None = None

    def __post_init__(self):
        if self.rows is None:
            self.rows = np.arange(len(self.ids), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows) -> "Dataset":
        rows = np.asarray(rows, dtype=int)
        return Dataset(
            name=self.name,
            input_kind=self.input_kind,
            task=self.task,
            ids=[self.ids[i] for i in rows],
            inputs=[self.inputs[i] for i in rows],
            targets=self.targets[rows],
            target_names=list(self.target_names),
            class_names=self.class_names,
            skipped=list(self.skipped),
            rows=self.rows[rows],
        )
