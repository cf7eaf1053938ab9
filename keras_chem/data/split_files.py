"""splits.json files (chemprop's format: a list of {train, val, test} row indices) and split checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from keras_chem.data.splits import PARTS, Split, _encode, _parse_indices


def write_splits_file(path: str | os.PathLike, splits: Sequence[Split]) -> Path:
    """Atomically write a JSON list of `{"train", "val", "test"}` dicts."""
    from keras_chem.io import atomic_write_json

    for k, s in enumerate(splits):
        _check_one(k, s, None)
    return atomic_write_json(path, [s.to_dict() for s in splits])


def read_splits_file(path: str | os.PathLike, n_rows: int) -> list[Split]:
    """Read and validate a splits JSON file (a list of dicts, or one dict)."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of {{train, val, test}} objects")
    splits = []
    for k, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: split {k} is not an object")
        try:
            raw = {p: _parse_indices(item.get(p, []), f"split {k} {p}") for p in PARTS}
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        missing = [p for p in ("train", "test") if p not in item]
        if missing:
            raise ValueError(f"{path}: split {k} has no {', '.join(missing)} key")
        for p in PARTS:
            if len(np.unique(raw[p])) != len(raw[p]):
                raise ValueError(f"{path}: split {k} {p} lists an index more than once")
        try:
            _check_one(k, Split(**raw), n_rows)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        splits.append(Split(**raw))
    return splits


def _check_one(k: int, split: Split, n_rows: int | None) -> None:
    for p in PARTS:
        idx = getattr(split, p)
        if len(idx) and (idx[0] < 0 or (n_rows is not None and idx[-1] >= n_rows)):
            bad = idx[0] if idx[0] < 0 else idx[-1]
            raise ValueError(f"split {k} {p}: index {int(bad)} out of range [0, {n_rows})")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = np.intersect1d(getattr(split, a), getattr(split, b))
        if len(both):
            raise ValueError(f"split {k}: {len(both)} rows in both {a} and {b} (e.g. row {int(both[0])})")
    if len(split.train) == 0 or len(split.test) == 0:
        raise ValueError(f"split {k}: empty {'train' if len(split.train) == 0 else 'test'} set")


def check_splits(
    splits: Sequence[Split], n_rows: int, groups: Sequence[str] | None = None, kfold: bool = False
) -> None:
    """Raise ValueError on out-of-range or overlapping indices, on a group that straddles
    partitions and, with kfold=True, unless every row is tested exactly once."""
    gcodes = None if groups is None else _encode(groups, n_rows, "groups")
    for k, s in enumerate(splits):
        _check_one(k, s, n_rows)
        if gcodes is None:
            continue
        part = np.full(n_rows, -1)
        for i, p in enumerate(PARTS):
            part[getattr(s, p)] = i
        used = part >= 0
        pairs = np.unique(np.stack([gcodes[used], part[used]], axis=1), axis=0)
        straddle = np.flatnonzero(np.bincount(pairs[:, 0]) > 1)
        if len(straddle):
            key = str(np.asarray(groups, dtype=object)[np.flatnonzero(gcodes == straddle[0])[0]])
            raise ValueError(f"split {k}: {len(straddle)} groups straddle partitions (e.g. {key!r})")
    if kfold:
        counts = np.bincount(np.concatenate([s.test for s in splits]), minlength=n_rows)
        if np.any(counts != 1):
            bad = np.flatnonzero(counts != 1)
            raise ValueError(
                f"k-fold: {len(bad)} rows are not tested exactly once (row {int(bad[0])}: {int(counts[bad[0]])} times)"
            )
