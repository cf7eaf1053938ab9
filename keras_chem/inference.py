"""Predictions from a finished run on raw inputs: SMILES, structures, formulas, or a file of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def predict(run_dir: str | Path, source: str | Path | None = None, *, smiles: list[str] | None = None,
            structures: list[Any] | None = None, compositions: list[str] | None = None, column: str | None = None,
            batch_size: int = 256):
    """Average the fold models of `run_dir` over the given inputs.

    `source` is a file in any format the dataset loaders read (`structures/input_files.py`);
    or pass a list as `smiles=`, `structures=` (pymatgen, ASE or structure dicts) or
    `compositions=`. Returns a pandas DataFrame with one row per input, in input order: for a
    file its id (a CSV keeps all its columns), then one column per task (positive-class
    probability, class probabilities, or the predicted value), `<task>_sigma` from a model that
    predicts its uncertainty (`roost --robust`), and `reason`, which is empty for
    predicted rows and says why a row could not be featurized (its predictions are NaN).
    """
    import pandas as pd

    given = _given(source, smiles, structures, compositions)
    if source is None:
        kind, inputs = given
        return predict_inputs(run_dir, list(inputs), kind, batch_size=batch_size)
    from keras_chem.structures.input_files import read_input_file

    file = read_input_file(source, column)
    frame = predict_inputs(run_dir, file.inputs, file.kind, file.reasons, batch_size)
    front = pd.DataFrame(file.columns) if file.columns is not None else pd.DataFrame({"id": file.ids})
    return pd.concat([front, frame], axis=1)


def _featurized(run_dir, inputs: list[Any], input_kind: str, reasons: dict[int, str] | None):
    """The run's family and preprocessor, the features of the readable `inputs`, the input position of
    every featurized row, and the reason of every input that could not be featurized."""
    from keras_chem.models.registry import family_from_info
    from keras_chem.training.run_files import RunDirectory

    info = RunDirectory(run_dir).model_info()
    family = family_from_info(info)
    if input_kind not in family.input_kinds:
        raise ValueError(f"model {info['model']!r} takes {' or '.join(family.input_kinds)} inputs, not {input_kind}")
    preprocessor = family.preprocessor_from_config(info["preprocessor"])
    reasons = dict(reasons or {})
    usable = [i for i, item in enumerate(inputs) if item is not None and i not in reasons]
    features = preprocessor.transform([str(i) for i in usable], [inputs[i] for i in usable], input_kind)
    for skip in features.skipped:
        reasons[int(skip.row_id)] = skip.reason
    return family, preprocessor, features, np.asarray(usable, dtype=np.int64)[features.kept], [reasons.get(i, "") for i in range(len(inputs))]


def predict_inputs(run_dir, inputs: list[Any], input_kind: str, reasons: dict[int, str] | None = None,
                   batch_size: int = 256):
    """Predictions and reasons for `inputs` (None entries are unreadable: `reasons[i]` says why)."""
    import pandas as pd

    from keras_chem.export import ensemble
    from keras_chem.training.batching import predict as predict_batched
    from keras_chem.training.compile_cache import enable_compile_cache
    from keras_chem.training.run_files import RunDirectory

    family, preprocessor, features, where, row_reasons = _featurized(run_dir, inputs, input_kind, reasons)
    task = RunDirectory(run_dir).task()
    columns = task.class_names if task.task == "multiclass" else task.target_names
    frame = pd.DataFrame(np.full((len(inputs), len(columns)), np.nan), columns=columns)
    if len(where):
        enable_compile_cache()
        outputs = predict_batched(ensemble(run_dir), features.arrays, preprocessor, batch_size)
        predicted, extras = family.split_outputs(outputs, task)
        frame.loc[where, columns] = predicted
        for extra, value in extras.items():
            for t, name in enumerate(columns):
                frame[f"{name}_{extra}"] = np.nan
                frame.loc[where, f"{name}_{extra}"] = value[:, t]
    frame["reason"] = row_reasons
    return frame


def embed(run_dir: str | Path, source: str | Path | None = None, *, smiles: list[str] | None = None,
          structures: list[Any] | None = None, compositions: list[str] | None = None, column: str | None = None,
          fold: int | None = None, batch_size: int = 256) -> dict:
    """The learned vector (the family's `embedding_layer`: a pooled crystal, a [CLS] token, a
    composition) of every input, from one fold model (`fold`) or averaged over the fold models.

    Inputs as for `predict`. Returns `{"ids", "embeddings" float32 [n, d], "reason", "formula"}`, one
    entry per input in input order; rows that could not be featurized are NaN with their reason;
    `formula` is each structure's cell formula or each formula as given ("" for molecules and
    unreadable rows), what `roost --strategy multimodal` matches compositions by. The fold
    models are trained from different initialisations, so their vector spaces differ: the average
    is a summary, one fold's vectors are a consistent feature space.
    """
    from keras_chem.export import fold_model_paths
    from keras_chem.models.saving import load_model
    from keras_chem.training.batching import predict as predict_batched
    from keras_chem.training.compile_cache import enable_compile_cache

    ids, inputs, kind, reasons = _inputs(source, smiles, structures, compositions, column)
    family, preprocessor, features, where, row_reasons = _featurized(run_dir, inputs, kind, reasons)
    paths = fold_model_paths(run_dir)
    if fold is not None:
        if not 0 <= fold < len(paths):
            raise ValueError(f"--fold {fold}: the run has fold models 0..{len(paths) - 1}")
        paths = [paths[fold]]
    vectors = None
    if len(where):
        enable_compile_cache()
        per_fold = []
        for path in paths:
            embedder = family.embedder(load_model(path))
            if embedder is None:
                raise ValueError(f"model {family.name!r} declares no embedding layer")
            per_fold.append(predict_batched(embedder, features.arrays, preprocessor, batch_size))
        vectors = np.mean(per_fold, axis=0)
    width = 0 if vectors is None else vectors.shape[1]
    embeddings = np.full((len(inputs), width), np.nan, dtype=np.float32)
    if vectors is not None:
        embeddings[where] = vectors
    return {"ids": [str(i) for i in ids], "embeddings": embeddings, "reason": row_reasons, "formula": _formulas(inputs, kind)}


def _formulas(inputs: list[Any], kind: str) -> list[str]:
    if kind == "composition":
        return [item if isinstance(item, str) else "" for item in inputs]
    if kind != "structure":
        return [""] * len(inputs)
    from keras_chem.structures.crystals import to_atoms

    formulas = []
    for item in inputs:
        try:
            formulas.append(to_atoms(item).get_chemical_formula(mode="metal") if item is not None else "")
        except (ValueError, KeyError, TypeError):
            formulas.append("")
    return formulas


def _given(source, smiles, structures, compositions) -> tuple[str, list] | None:
    """`(kind, inputs)` of the one list of raw inputs given, None for a file; an error for anything else."""
    given = {k: v for k, v in {"smiles": smiles, "structure": structures, "composition": compositions}.items() if v is not None}
    if (source is None) == (len(given) == 0) or len(given) > 1:
        raise ValueError("pass a file, or exactly one of smiles=, structures= or compositions=")
    return next(iter(given.items())) if given else None


def _inputs(source, smiles, structures, compositions, column):
    """`(ids, inputs, kind, reasons)` of a file or of exactly one list of raw inputs."""
    given = _given(source, smiles, structures, compositions)
    if given is not None:
        kind, inputs = given
        return list(range(len(inputs))), list(inputs), kind, {}
    from keras_chem.structures.input_files import read_input_file

    file = read_input_file(source, column)
    return file.ids, file.inputs, file.kind, file.reasons
