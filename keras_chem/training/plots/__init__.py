"""PNG pictures of a run directory: ROC curves, confusion matrices or parity plots, t-SNE of embeddings.

Everything is drawn on `matplotlib.figure.Figure` objects with the Agg renderer (never pyplot), so
no display is needed, no global backend is switched and no figure outlives its function. Each PNG
is rendered into memory and written atomically; the same inputs give the same bytes.

`task_info` is the dict under "task" in model_info.json:
{"task": "classification" | "multiclass" | "regression", "target_names": [...], "class_names": [...] | None}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_chem.training.plots.confusion import confusion_matrix_png
from keras_chem.training.plots.figures import _safe_name, _save
from keras_chem.training.plots.roc import ROC_JSON, roc_auc_summary, roc_curves
from keras_chem.training.plots.tsne import _subsample, embedding_tsne

__all__ = ["ROC_JSON", "confusion_matrix_png", "embedding_tsne", "roc_auc_summary", "roc_curves", "write_run_plots",
           "_safe_name", "_save", "_subsample"]


def write_run_plots(run_dir, task_info: dict, embeddings=None, embedding_labels=None, label_name=None) -> list[Path]:
    """Every picture of a run directory; returns the PNGs written (`tsne_cls.png` only with embeddings).
    Also writes `roc_auc_by_fold.json` for classification and multiclass runs."""
    run_dir = Path(run_dir)
    written = list(roc_curves(run_dir, task_info))
    matrix = confusion_matrix_png(run_dir, task_info)
    if matrix is not None:
        written.append(matrix)
    if embeddings is not None:
        n = len(embeddings)
        labels = np.full(n, np.nan) if embedding_labels is None else np.asarray(embedding_labels)
        names = None
        if task_info["task"] == "multiclass" and labels.dtype.kind in "iuf":
            names = task_info.get("class_names")
        what = f", coloured by {label_name}" if label_name else ""
        written.append(embedding_tsne(embeddings, labels, run_dir / "tsne_cls.png", f"t-SNE of learned embeddings{what}",
                                      label_names=names, legend_title=label_name))
    return written
