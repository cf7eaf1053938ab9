"""The metrics of one fold's test predictions, by task type."""

from __future__ import annotations

import numpy as np

from keras_chem.models.base import TaskInfo


def evaluate(task: TaskInfo, y_true: np.ndarray, predictions: np.ndarray) -> dict:
    from keras_chem import metrics

    if task.task == "classification":
        return metrics.binary_metrics(y_true, predictions, task.target_names)
    if task.task == "multiclass":
        return metrics.multiclass_metrics(y_true[:, 0].astype(int), predictions, task.class_names)
    return metrics.regression_metrics(y_true, predictions, task.target_names)
