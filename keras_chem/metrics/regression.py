"""Regression metrics on a held-out test fold, missing labels masked."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from keras_chem.metrics.classification import nanmean

NAN = float("nan")


def regression_metrics(y_true, y_pred, task_names: Sequence[str]) -> dict:
    """Per-task MAE, RMSE and R² on the labelled rows (NaN = missing), and their means.

    R² is NaN (with a `note`) when a task has fewer than 2 labelled rows or constant
    labels; NaN values are left out of the means.
    """
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y.ndim == 1:
        y, p = y[:, None], p.reshape(-1, 1)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(task_names):
        raise ValueError(f"shapes y_true {y.shape}, y_pred {p.shape} and {len(task_names)} task names disagree")
    per_task = {}
    for t, name in enumerate(task_names):
        mask = ~np.isnan(y[:, t])
        yt, pt = y[mask, t], p[mask, t]
        if np.any(np.isnan(pt)):
            raise ValueError(f"task {name}: y_pred is NaN on {int(np.isnan(pt).sum())} labelled rows")
        entry = {"mae": NAN, "rmse": NAN, "r2": NAN, "n": int(len(yt))}
        if len(yt):
            err = pt - yt
            entry["mae"] = float(np.mean(np.abs(err)))
            entry["rmse"] = float(np.sqrt(np.mean(err**2)))
            ss_tot = float(np.sum((yt - yt.mean()) ** 2))
            if len(yt) >= 2 and ss_tot > 0:
                entry["r2"] = float(1 - np.sum(err**2) / ss_tot)
        if math.isnan(entry["r2"]):
            entry["note"] = f"R² undefined for {len(yt)} labelled test rows" + (" with constant labels" if len(yt) >= 2 else "")
        per_task[name] = entry
    out = {key: nanmean([e[key] for e in per_task.values()]) for key in ("mae", "rmse", "r2")}
    out["per_task"] = per_task
    return out
