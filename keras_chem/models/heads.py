"""Output heads shared by every model family: one per task type."""

from __future__ import annotations

import keras


def output_head(features, task, target_stats: dict | None = None, name: str = "output"):
    """Dense → probabilities (sigmoid per target, or softmax) or values in target units."""
    logits = keras.layers.Dense(task.n_outputs, name=f"{name}_logits")(features)
    return activate(logits, task, target_stats, name)


def activate(logits, task, target_stats: dict | None = None, name: str = "output"):
    """A head's `[B, n_outputs]` logits → probabilities, or values rescaled to target units."""
    if task.task == "classification":
        return keras.layers.Activation("sigmoid", name=name)(logits)
    if task.task == "multiclass":
        return keras.layers.Activation("softmax", name=name)(logits)
    stats = target_stats or {"mean": [0.0] * task.n_outputs, "std": [1.0] * task.n_outputs}
    from keras_chem.layers.rescale import Rescale

    return Rescale(shift=stats["mean"], scale=stats["std"], name=name)(logits)


def loss_for(task, target_stats: dict | None = None):
    """The default loss of a task type; every one masks missing (NaN) labels."""
    from keras_chem.losses.masked import MaskedBinaryCrossentropy, MaskedMeanSquaredError, MaskedSparseCategoricalCrossentropy

    if task.task == "classification":
        return MaskedBinaryCrossentropy()
    if task.task == "multiclass":
        return MaskedSparseCategoricalCrossentropy()
    return MaskedMeanSquaredError(scale=(target_stats or {}).get("std"))
