"""The contract of a model family, and what the runner tells a family about the task.

A family is one module in `models/` that defines `FAMILY`, an instance of a `ModelFamily`
subclass. It declares everything the runner, the command line, `predict`, `export` and
pretraining need; nothing outside `models/` and `layers/` changes when a family is added
(`models/registry.py` names the built-in ones; others register with `register_model` or the
`keras_chem.models` entry point group).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keras_chem.data.types import Skip

INPUT_KINDS = ("smiles", "structure", "composition")
# What pretraining writes (`training/pretrain.py`) and `--init` reads.
PRETRAIN_ENCODER_FILE = "encoder.keras"
PRETRAIN_INFO_FILE = "pretrain_info.json"


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


class PaddedPreprocessor:
    """Raw inputs → a dict of arrays, zero-padded along `padded_axes` to a cap taken from the data.

    A subclass implements `featurize` (rows padded to the longest of the call, no cap applied),
    `sizes`, `input_signature` and `get_config`, and keeps the cap in `self.cap`. This class turns
    that into `fit_transform` (the cap from the data) and `transform` (rows over the cap skipped).
    The runner featurizes large datasets chunk by chunk through `featurize` and sets the cap.
    """

    padded_axes: dict[str, tuple[int, ...]] = {}  # input name → axes padded to a row's size
    slot_axes: dict[str, tuple[int, ...]] = {}  # input name → axes `trim_slots` may shorten per batch
    version: int = 1  # bump when the arrays for the same inputs and config change: stale caches are not reused
    bucket_step: int = 8  # batch sizes along the padded axes are multiples of this (`training.batching.bucket_sizes`)
    cap: int | None = None

    def featurize(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        raise NotImplementedError

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Real (unpadded) size of each row along the padded axes."""
        raise NotImplementedError

    def input_signature(self) -> dict[str, tuple[tuple, str]]:
        """Input name → (shape without batch, dtype) at the cap, for export."""
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def settle(self, input_kind: str) -> None:
        """Fix the settings that depend on the kind of input (called before featurizing it); by default none."""

    def over_cap_reason(self, size: int) -> str:
        return f"size {size}, over the model's cap of {self.cap}"

    def trim_slots(self, inputs: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        """A batch trimmed to its bucket `size` → the same batch, its `slot_axes` shortened where
        nothing real is cut (e.g. the neighbour slots of small molecules); by default unchanged."""
        return inputs

    def fit_transform(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        features = self.featurize(ids, inputs, input_kind)
        if len(features.kept) == 0:
            raise ValueError("no input could be featurized; see the skipped rows")
        self.cap = int(self.sizes(features.arrays).max())
        return Features(features.kept, pad_arrays(features.arrays, self.cap, self.padded_axes), features.skipped)

    def transform(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        if self.cap is None:
            raise RuntimeError("call fit_transform() before transform()")
        features = self.featurize(ids, inputs, input_kind)
        sizes = self.sizes(features.arrays)
        fits = sizes <= self.cap
        skipped = features.skipped + [Skip(ids[p], self.over_cap_reason(int(s))) for p, s in zip(features.kept[~fits], sizes[~fits])]
        arrays = {name: array[fits] for name, array in features.arrays.items()}
        return Features(features.kept[fits], pad_arrays(arrays, self.cap, self.padded_axes), skipped)


def pad_arrays(arrays: dict[str, np.ndarray], size: int, padded_axes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Every padded axis cut or zero-padded to `size`."""
    out = {}
    for name, array in arrays.items():
        axes = padded_axes.get(name, ())
        array = array[tuple(slice(0, size) if a in axes else slice(None) for a in range(array.ndim))]
        widths = [(0, size - array.shape[a]) if a in axes else (0, 0) for a in range(array.ndim)]
        out[name] = np.pad(array, widths) if any(w for _, w in widths) else array
    return out


def row_keys(arrays: dict[str, np.ndarray], sizes: np.ndarray, padded_axes: dict[str, tuple[int, ...]]) -> list[bytes]:
    """One key per row: its arrays' bytes cut to the row's real size, so equal inputs have equal keys."""
    keys = []
    for i, size in enumerate(sizes):
        row = pad_arrays({k: v[i : i + 1] for k, v in arrays.items()}, int(size), padded_axes)
        keys.append(b"".join(np.ascontiguousarray(row[k]).tobytes() for k in sorted(row)))
    return keys


@dataclass(frozen=True)
class PretrainObjective:
    """A self-supervised objective: `build(config, preprocessor)` returns the model trained on it
    and the encoder that is kept; `make_batch(config, preprocessor, arrays)` (arrays: the whole
    pretraining corpus) returns `make(inputs)`, which turns a batch of input arrays into `(x, y)` or
    `(x, y, sample_weight)`; `loss` and `metrics` compile the trained model (`metrics` weighted; a
    model with several outputs gets a dict of losses and `loss_weights`). With `element_vectors` (a
    file name), the encoder maps the preprocessor's arrays to per-atom vectors, and after training
    each element's mean vector over the corpus is written to that file (`training/element_vectors.py`)."""

    name: str
    description: str
    build: Any
    make_batch: Any
    loss: Any
    metrics: Any = None
    loss_weights: dict | None = None
    summary_metric: str | None = None  # a weighted metric reported after pretraining, e.g. "accuracy"
    defaults: dict = field(default_factory=dict)  # option defaults of this objective (flags still win), e.g. its learning rate
    validation_share: float = 0.1  # held out for early stopping
    padded_inputs: dict = field(default_factory=dict)  # inputs `make_batch` adds that are padded like the preprocessor's
    padded_targets: dict = field(default_factory=dict)  # targets of `make_batch` padded like the inputs: name → axes
    default_datasets: tuple[str, ...] = ()  # the corpus when `kchem pretrain` names no --datasets
    element_vectors: str | None = None
    encoder_weights: str | None = None  # a file name: the encoder's weights with its sizes and vocabulary, shippable (--copy-to)
    usage: str = "fine-tune with `kchem train {model} --init {out} ...`"


class ModelFamily:
    """What a family declares. Class attributes:

    `name`, `input_kinds` (of `INPUT_KINDS`), `options` (model options and their defaults; the
    shared training options live in the runner), `training_defaults` (overrides of the runner's
    training option defaults), `embedding_layer` (the layer whose output is a row's learned
    vector, e.g. a pooled crystal), `pretraining` (objective name → `PretrainObjective`).
    """

    name: str = ""
    input_kinds: tuple[str, ...] = INPUT_KINDS
    options: dict = {}
    training_defaults: dict = {}
    embedding_layer: str | None = None
    pretraining: dict[str, PretrainObjective] = {}

    def preprocessor(self, config: dict) -> PaddedPreprocessor:
        raise NotImplementedError

    def preprocessor_from_config(self, config: dict) -> PaddedPreprocessor:
        raise NotImplementedError

    def build(self, config: dict, preprocessor: PaddedPreprocessor, task: TaskInfo, target_stats: dict | None = None):
        """The keras.Model for `task`; `target_stats` (mean, std per target) for regression."""
        raise NotImplementedError

    def loss(self, task: TaskInfo, target_stats: dict | None = None, config: dict | None = None):
        from keras_chem.models.heads import loss_for

        return loss_for(task, target_stats)

    def embedder(self, model):
        """A keras.Model from `model`'s inputs to its `embedding_layer` output, or None if it has none."""
        import keras

        names = [layer.name for layer in model.layers]
        if self.embedding_layer not in names:
            return None
        return keras.Model(model.inputs, model.get_layer(self.embedding_layer).output)

    def split_outputs(self, outputs: np.ndarray, task: TaskInfo) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A model's outputs → `(predictions [n, n_outputs], extras)`: extras are named per-target
        columns written beside the predictions (e.g. `"sigma"`, an uncertainty per target)."""
        return outputs, {}

    def initialize(self, model, source: str, config: dict, preprocessor: PaddedPreprocessor) -> None:
        """Load pretrained weights from `source` (`--init`) into a freshly built model."""
        raise ValueError(f"model {self.name!r} cannot be initialised from a pretrained run (--init)")

    def check_config(self, config: dict) -> None:
        """Raise ValueError for an option value the family does not accept."""
