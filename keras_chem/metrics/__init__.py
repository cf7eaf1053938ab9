"""Metrics: per-task ROC-AUC / PR-AUC, MAE / RMSE / R², the paper-compatible pooled AUC, fold summaries."""

from keras_chem.metrics.classification import binary_metrics, multiclass_metrics, pooled_onehot_auc
from keras_chem.metrics.regression import regression_metrics
from keras_chem.metrics.summary import format_summary_markdown, summarize

__all__ = [
    "binary_metrics",
    "multiclass_metrics",
    "pooled_onehot_auc",
    "regression_metrics",
    "summarize",
    "format_summary_markdown",
]
