"""Losses that ignore missing labels (NaN in `y_true`)."""

from __future__ import annotations

import keras
from keras import ops


def _mask_and_fill(y_true):
    present = ops.logical_not(ops.isnan(y_true))
    return ops.cast(present, "float32"), ops.where(present, y_true, ops.zeros_like(y_true))


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on probabilities averaged over the labels that are present."""

    def __init__(self, name="masked_binary_crossentropy", **kwargs):
        kwargs.pop("reduction", None)  # the masked mean is the reduction
        super().__init__(name=name, reduction=None, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        weight, filled = _mask_and_fill(y_true)
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
        loss = -(filled * ops.log(y_pred) + (1.0 - filled) * ops.log(1.0 - y_pred))
        return ops.sum(loss * weight) / ops.maximum(ops.sum(weight), 1.0)


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedMeanSquaredError(keras.losses.Loss):
    """Mean squared error over the targets that are present (targets standardised)."""

    def __init__(self, name="masked_mean_squared_error", scale=None, **kwargs):
        kwargs.pop("reduction", None)  # the masked mean is the reduction
        super().__init__(name=name, reduction=None, **kwargs)
        self.scale = scale

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        weight, filled = _mask_and_fill(y_true)
        error = filled - ops.cast(y_pred, "float32")
        if self.scale is not None:
            error = error / ops.convert_to_tensor(self.scale, "float32")
        return ops.sum(ops.square(error) * weight) / ops.maximum(ops.sum(weight), 1.0)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
