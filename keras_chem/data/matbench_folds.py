"""The official Matbench v0.1 test folds, and splits over a loaded dataset that keep them."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from keras_chem.data.splits import Split, _carve_random, _check_seed, _group_codes, _rng


def load_matbench_folds(path: str | os.PathLike, task: str) -> list[list[str]]:
    """Official test mbids per fold for `task` ("matbench_phonons" or "phonons")."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    tasks = data["splits"]
    name = task if task.startswith("matbench_") else f"matbench_{task}"
    if name not in tasks:
        raise ValueError(f"unknown Matbench task {task!r}; known: {', '.join(sorted(tasks))}")
    folds = tasks[name]
    keys = sorted(folds, key=lambda k: int(k.rsplit("_", 1)[-1]))
    return [list(folds[k]["test"]) for k in keys]


def matbench_splits(
    ids: list[str],
    test_ids_per_fold: list[list[str]],
    *,
    seed: int,
    val_fraction: float = 0.1,
    groups: Sequence[str] | None = None,
) -> list[Split]:
    """Official Matbench test folds over the loaded rows `ids`.

    Test ids missing from `ids` (skipped rows) are ignored; a fold left with no test row
    raises ValueError. Validation is carved at random out of each fold's train part. With
    `groups`, training rows that share a group with a test row are dropped from that fold
    (the official test set is kept intact, so no group straddles partitions).
    """
    _check_seed(seed)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(ids)
    gcodes = _group_codes(groups, n)
    row_of: dict[str, list[int]] = {}
    for i, key in enumerate(ids):
        row_of.setdefault(str(key), []).append(i)
    rows = np.arange(n)
    splits = []
    for fold, test_ids in enumerate(test_ids_per_fold):
        test = np.asarray(sorted(i for t in test_ids for i in row_of.get(str(t), [])), dtype=np.int64)
        if len(test) == 0:
            raise ValueError(f"Matbench fold {fold}: none of its {len(test_ids)} test ids is in the loaded data")
        leaked = np.isin(gcodes, gcodes[test])
        train_part = np.setdiff1d(rows[~leaked], test)
        val = _carve_random(train_part, gcodes, val_fraction, _rng(seed, fold, 1))
        splits.append(Split(train=np.setdiff1d(train_part, val), val=val, test=test))
    return splits
