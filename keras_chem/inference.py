"""Predictions from a finished run on raw inputs (SMILES, structures, formulas)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def predict(run_dir: str | Path, smiles: list[str] | None = None, structures: list[Any] | None = None,
            compositions: list[str] | None = None, batch_size: int = 256):
    """Average the fold models of `run_dir` over the given inputs.

    Returns a pandas DataFrame in input order: one column per task (positive-class
    probability, class probabilities, or the predicted value) and `reason`, which is empty
    for predicted rows and says why a row could not be featurized (its predictions are NaN).
    """
    import pandas as pd

    from keras_chem.export import ensemble
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.batching import predict as predict_batched
    from keras_chem.training.compile_cache import enable_compile_cache

    given = {k: v for k, v in {"smiles": smiles, "structure": structures, "composition": compositions}.items() if v is not None}
    if len(given) != 1:
        raise ValueError("pass exactly one of smiles=, structures= or compositions=")
    input_kind, inputs = next(iter(given.items()))
    enable_compile_cache()
    info = json.loads((Path(run_dir) / "model_info.json").read_text())
    family = get_model_family(info["model"])
    preprocessor = family.preprocessor_from_config(info["preprocessor"])
    task = TaskInfo.from_dict(info["task"])
    ids = [str(i) for i in range(len(inputs))]
    features = preprocessor.transform(ids, list(inputs), input_kind)

    columns = task.class_names if task.task == "multiclass" else task.target_names
    values = np.full((len(inputs), len(columns)), np.nan, dtype=np.float64)
    if len(features.kept):
        model = ensemble(run_dir)
        values[features.kept] = predict_batched(model, features.arrays, preprocessor, batch_size)
    reasons = [""] * len(inputs)
    for skip in features.skipped:
        reasons[int(skip.row_id)] = skip.reason
    frame = pd.DataFrame(values, columns=columns)
    frame["reason"] = reasons
    return frame
