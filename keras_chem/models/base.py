"""What every model family provides, and what the runner tells it about the task."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from keras_chem.data.types import Skip


@dataclass(frozen=True)
class TaskInfo:
    """The prediction task: `classification` (one sigmoid per target), `multiclass`
    (one softmax over `n_classes`) or `regression` (one value per target)."""

    task: str
    target_names: list[str]
    class_names: list[str] | None = None

    @property
    def n_outputs(self) -> int:
        if self.task == "multiclass":
            return len(self.class_names or [])
        return len(self.target_names)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TaskInfo":
        return cls(**data)


@dataclass
class Features:
    """Featurized rows: `arrays` hold one entry per kept row, `kept` their positions in
    the input list, `skipped` the rows that could not be featurized."""

    kept: np.ndarray
    arrays: dict[str, np.ndarray]
    skipped: list[Skip]


class Preprocessor(Protocol):
    """Turns raw inputs (SMILES, `ase.Atoms`, formulas) into a model's input arrays."""

    def fit_transform(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features: ...

    def transform(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features: ...

    def get_config(self) -> dict: ...

    cap: int  # padded size of the arrays' variable axis

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Real (unpadded) size of each row, for bucketing."""

    def trim(self, arrays: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        """The arrays cut to `size` along their padded axis."""

    def input_signature(self) -> dict[str, tuple[tuple, str]]:
        """Input name → (shape without batch, dtype) at the caps, for export."""


class ModelFamily(Protocol):
    name: str

    def default_config(self) -> dict: ...

    def preprocessor(self, config: dict) -> Preprocessor: ...

    def preprocessor_from_config(self, config: dict) -> Preprocessor: ...

    def build(self, config: dict, preprocessor: Preprocessor, task: TaskInfo): ...
