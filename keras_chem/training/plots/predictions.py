"""The test predictions of a run directory's folds, as the pictures read them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np


def read_fold_predictions(run_dir) -> list[tuple[int, dict[str, list[str]]]]:
    """(fold index, column name -> cell strings) of every `fold_<k>/test_predictions.csv`, by k."""
    folds = []
    for fold_dir in Path(run_dir).glob("fold_*"):
        match = re.fullmatch(r"fold_(\d+)", fold_dir.name)
        path = fold_dir / "test_predictions.csv"
        if not match or not path.is_file():
            continue
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = list(reader)
        columns = {name: [row[i] if i < len(row) else "" for row in rows] for i, name in enumerate(header)}
        folds.append((int(match.group(1)), columns))
    return sorted(folds, key=lambda fold: fold[0])


def _floats(cells: list[str]) -> np.ndarray:
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell)
        except ValueError:
            pass
    return out


def _binary_folds(folds, name: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(k, labels 0/1, probabilities) per fold for one task; rows without a label or a prediction dropped."""
    out = []
    for k, columns in folds:
        if name not in columns or f"{name}_pred" not in columns:
            continue
        y, p = _floats(columns[name]), _floats(columns[f"{name}_pred"])
        keep = ~np.isnan(y) & ~np.isnan(p)
        out.append((k, (y[keep] > 0.5).astype(np.int64), p[keep]))
    return out


def _multiclass_folds(folds, class_names: list[str]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(k, true class index, probabilities [n, C]) per fold; rows with an unknown label dropped."""
    index = {name: i for i, name in enumerate(class_names)}
    out = []
    for k, columns in folds:
        labels = columns.get("label", [])
        probs = np.stack([_floats(columns.get(f"prob_{c}", [""] * len(labels))) for c in class_names], axis=1)
        y = np.asarray([index.get(label, -1) for label in labels], dtype=np.int64)
        keep = (y >= 0) & ~np.isnan(probs).any(axis=1)
        out.append((k, y[keep], probs[keep]))
    return out
