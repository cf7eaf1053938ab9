"""Classification metrics on a held-out test fold.

Honest by default: per-task ROC-AUC from the positive-class probability, missing labels
masked. The pooled one-hot AUC of the original elEmBERT notebooks is reported beside it,
under its own name, never instead of it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

NAN = float("nan")


def _as_2d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be [n] or [n, T], got shape {a.shape}")
    return a


def pooled_onehot_auc(y_true, y_prob) -> float:
    """The AUC that the original elEmBERT notebooks report (NOT the standard ROC-AUC).

    Keras `AUC().update_state(one_hot_y, softmax_probs)` flattens the one-hot labels and
    the class probabilities of every class into one pooled ROC. Binary: `y_true` [n] 0/1,
    `y_prob` [n] positive-class probability; labels [1-y, y] and scores [1-p, p] are
    flattened and scored with sklearn's exact ROC-AUC (Keras approximates it with 200
    thresholds). Multiclass: `y_true` [n] class index, `y_prob` [n, C].

    Class imbalance inflates it: a constant predictor p = c scores π (the positive
    fraction) if c > 0.5, 1 − π if c < 0.5 and 0.5 if c = 0.5, so predicting the prior
    c = π scores max(π, 1 − π) while its ROC-AUC is 0.5. NaN labels are ignored.
    """
    p = np.asarray(y_prob, dtype=float)
    y = np.asarray(y_true, dtype=float).reshape(-1)
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    if len(y) == 0:
        return NAN
    if p.ndim == 1:
        onehot, probs = np.stack([1 - y, y], axis=1), np.stack([1 - p, p], axis=1)
    else:
        onehot = np.zeros_like(p)
        onehot[np.arange(len(y)), y.astype(int)] = 1
        probs = p
    return float(roc_auc_score(onehot.ravel(), probs.ravel()))


def binary_metrics(y_true, y_prob, task_names: Sequence[str]) -> dict:
    """Per-task ROC-AUC, PR-AUC and pooled one-hot AUC on the labelled rows, and their means.

    `y_true` float [n, T] (0/1, NaN = missing); `y_prob` [n, T] positive-class probabilities.
    A task whose labelled test rows hold one class only gets NaN and a `note`, and is left
    out of the means.
    """
    y, p = _as_2d(y_true, "y_true"), _as_2d(y_prob, "y_prob")
    if y.shape != p.shape or y.shape[1] != len(task_names):
        raise ValueError(f"shapes y_true {y.shape}, y_prob {p.shape} and {len(task_names)} task names disagree")
    per_task = {}
    for t, name in enumerate(task_names):
        mask = ~np.isnan(y[:, t])
        yt, pt = y[mask, t], p[mask, t]
        if np.any((yt != 0) & (yt != 1)):
            raise ValueError(f"task {name}: labels must be 0/1 or NaN")
        if np.any(np.isnan(pt)):
            raise ValueError(f"task {name}: y_prob is NaN on {int(np.isnan(pt).sum())} labelled rows")
        n_pos = int(yt.sum())
        entry = {"roc_auc": NAN, "pr_auc": NAN, "pooled_onehot_auc": NAN, "n": int(len(yt)), "n_positive": n_pos}
        if n_pos == 0 or n_pos == len(yt):
            kind = "no labelled rows" if len(yt) == 0 else f"one class only ({'all positive' if n_pos else 'all negative'})"
            entry["note"] = f"{kind} among {len(yt)} labelled test rows: AUCs undefined, left out of the means"
        else:
            entry["roc_auc"] = float(roc_auc_score(yt, pt))
            entry["pr_auc"] = float(average_precision_score(yt, pt))
            entry["pooled_onehot_auc"] = pooled_onehot_auc(yt, pt)
        per_task[name] = entry
    out = {key: nanmean([e[key] for e in per_task.values()]) for key in ("roc_auc", "pr_auc", "pooled_onehot_auc")}
    out["n_tasks_scored"] = sum(not math.isnan(e["roc_auc"]) for e in per_task.values())
    out["per_task"] = per_task
    return out


def multiclass_metrics(y_true_int, y_prob, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro one-vs-rest ROC-AUC, pooled one-hot AUC, confusion matrix.

    `y_true_int` [n] class indices (NaN rows are dropped); `y_prob` [n, C]. Balanced
    accuracy and the macro ROC-AUC average over the classes present in the test rows;
    absent classes are named in `note`. Confusion matrix: rows true, columns argmax.
    """
    p = np.asarray(y_prob, dtype=float)
    y = np.asarray(y_true_int, dtype=float).reshape(-1)
    n_classes = len(class_names)
    if p.ndim != 2 or p.shape != (len(y), n_classes):
        raise ValueError(f"y_prob must be [{len(y)}, {n_classes}], got shape {p.shape}")
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    if np.any((y != np.round(y)) | (y < 0) | (y >= n_classes)):
        raise ValueError(f"y_true_int must hold class indices in [0, {n_classes})")
    if np.any(np.isnan(p)):
        raise ValueError("y_prob is NaN on labelled rows")
    y = y.astype(np.int64)
    pred = p.argmax(axis=1) if len(y) else np.empty(0, np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    support = cm.sum(axis=1)
    present = np.flatnonzero(support > 0)
    per_class = {}
    for c, name in enumerate(class_names):
        auc = NAN
        if 0 < support[c] < len(y):
            auc = float(roc_auc_score(y == c, p[:, c]))
        per_class[name] = {"roc_auc": auc, "recall": float(cm[c, c] / support[c]) if support[c] else NAN, "n": int(support[c])}
    out = {
        "accuracy": float(np.trace(cm) / len(y)) if len(y) else NAN,
        "balanced_accuracy": nanmean([per_class[class_names[c]]["recall"] for c in present]),
        "roc_auc": nanmean([per_class[class_names[c]]["roc_auc"] for c in present]),
        "pooled_onehot_auc": pooled_onehot_auc(y, p) if len(y) else NAN,
        "n": int(len(y)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
    absent = [class_names[c] for c in range(n_classes) if support[c] == 0]
    if absent:
        out["note"] = (
            f"classes absent from the test rows: {', '.join(absent)}; "
            "balanced accuracy and macro ROC-AUC are over the present classes only"
        )
    return out


def nanmean(values) -> float:
    """The mean of the values that are not NaN; NaN if none is."""
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else NAN
