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

    given = {k: v for k, v in {"smiles": smiles, "structure": structures, "composition": compositions}.items() if v is not None}
    if (source is None) == (len(given) == 0) or len(given) > 1:
        raise ValueError("pass a file, or exactly one of smiles=, structures= or compositions=")
    if source is None:
        kind, inputs = next(iter(given.items()))
        return predict_inputs(run_dir, list(inputs), kind, batch_size=batch_size)
    from keras_chem.structures.input_files import read_input_file

    file = read_input_file(source, column)
    frame = predict_inputs(run_dir, file.inputs, file.kind, file.reasons, batch_size)
    front = pd.DataFrame(file.columns) if file.columns is not None else pd.DataFrame({"id": file.ids})
    return pd.concat([front, frame], axis=1)


def predict_inputs(run_dir, inputs: list[Any], input_kind: str, reasons: dict[int, str] | None = None,
                   batch_size: int = 256):
    """Predictions and reasons for `inputs` (None entries are unreadable: `reasons[i]` says why)."""
    import pandas as pd

    from keras_chem.export import ensemble
    from keras_chem.models.registry import family_from_info
    from keras_chem.training.batching import predict as predict_batched
    from keras_chem.training.compile_cache import enable_compile_cache
    from keras_chem.training.run_files import RunDirectory

    run = RunDirectory(run_dir)
    info = run.model_info()
    family = family_from_info(info)
    if input_kind not in family.input_kinds:
        raise ValueError(f"model {info['model']!r} takes {' or '.join(family.input_kinds)} inputs, not {input_kind}")
    preprocessor = family.preprocessor_from_config(info["preprocessor"])
    task = run.task()
    reasons = dict(reasons or {})
    usable = [i for i, item in enumerate(inputs) if item is not None and i not in reasons]
    features = preprocessor.transform([str(i) for i in usable], [inputs[i] for i in usable], input_kind)
    columns = task.class_names if task.task == "multiclass" else task.target_names
    frame = pd.DataFrame(np.full((len(inputs), len(columns)), np.nan), columns=columns)
    if len(features.kept):
        enable_compile_cache()
        outputs = predict_batched(ensemble(run_dir), features.arrays, preprocessor, batch_size)
        predicted, extras = family.split_outputs(outputs, task)
        where = np.asarray(usable)[features.kept]
        frame.loc[where, columns] = predicted
        for extra, value in extras.items():
            for t, name in enumerate(columns):
                frame[f"{name}_{extra}"] = np.nan
                frame.loc[where, f"{name}_{extra}"] = value[:, t]
    for skip in features.skipped:
        reasons[int(skip.row_id)] = skip.reason
    frame["reason"] = [reasons.get(i, "") for i in range(len(inputs))]
    return frame
