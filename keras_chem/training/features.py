"""A run's featurized dataset: built once per (data file, rows, featurizer), streamed in chunks
into a memory-mapped store shared by folds, reruns and processes."""

from __future__ import annotations

import hashlib

from keras_chem.data.types import Dataset
from keras_chem.featurizers.store import CHUNK_ROWS, Chunk, FeatureStore, build_store
from keras_chem.training.console import console, row_progress


def featurize_dataset(family, model_config: dict, dataset: Dataset, chunk_rows: int = CHUNK_ROWS):
    """`(store, preprocessor)`: the arrays of every row that could be featurized (memory maps, in
    input order) and the preprocessor fitted to them (its cap). The store is keyed by the data
    file's sha256, the rows used, the preprocessor's settings and its featurizer version."""
    from keras_chem.data.registry import get_card

    preprocessor = family.preprocessor(model_config)
    preprocessor.settle(dataset.input_kind)
    card = get_card(dataset.name)
    key = {
        "dataset": dataset.name,
        "file_sha256": card.file().sha256,
        "rows": _digest(dataset.ids),
        "model": family.name,
        "featurizer": type(preprocessor).__name__,
        "featurizer_version": preprocessor.version,
        "preprocessor": preprocessor.get_config(),
        "chunk_rows": chunk_rows,
    }

    def featurize(ids, inputs) -> Chunk:
        features = preprocessor.featurize(ids, inputs, dataset.input_kind)
        return Chunk(features.kept, features.arrays, features.skipped)

    def finish(cap: int) -> dict:
        preprocessor.cap = cap
        return {"preprocessor": preprocessor.get_config()}

    with row_progress("featurizing", len(dataset)) as advance:
        store: FeatureStore = build_store(
            key, dataset.ids, dataset.inputs, featurize, preprocessor.padded_axes, finish, chunk_rows=chunk_rows,
            progress=advance, on_wait=lambda holder: console.print(f"waiting for {_holder(holder)}, which is featurizing {dataset.name}"),
        )
    return store, family.preprocessor_from_config(store.meta["extra"]["preprocessor"])


def _holder(holder: dict) -> str:
    from keras_chem.locks import holder_description

    return holder_description(holder)


def _digest(values: list[str]) -> str:
    return hashlib.sha256("\n".join(values).encode()).hexdigest()[:16]
