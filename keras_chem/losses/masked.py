"""Losses that ignore missing labels (NaN in `y_true`), averaged over the labels of the global batch.

A row whose targets are all NaN counts for nothing, so batches may be padded with such rows
(data-parallel training pads every batch to a multiple of the device count). Under a
`tf.distribute` strategy the denominator is the count over all replicas (`cross_replica_sum`):
the replicas' gradients add up to the gradient of the global mean.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_chem.cross_replica import cross_replica_sum


def _mask_and_fill(y_true):
    present = ops.logical_not(ops.isnan(y_true))
    return ops.cast(present, "float32"), ops.where(present, y_true, ops.zeros_like(y_true))


def masked_mean(values, weight):
    """Sum of `values * weight` over this replica, over the weight of the whole global batch."""
    return ops.sum(ops.where(weight > 0, values, 0.0) * weight) / ops.maximum(cross_replica_sum(ops.sum(weight)), 1.0)


class _MaskedLoss(keras.losses.Loss):
    def __init__(self, name, **kwargs):
        kwargs.pop("reduction", None)  # the masked mean is the reduction
        super().__init__(name=name, reduction=None, **kwargs)


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedBinaryCrossentropy(_MaskedLoss):
    """Binary cross-entropy on probabilities averaged over the labels that are present."""

    def __init__(self, name="masked_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        weight, filled = _mask_and_fill(y_true)
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
        loss = -(filled * ops.log(y_pred) + (1.0 - filled) * ops.log(1.0 - y_pred))
        return masked_mean(loss, weight)


class _ScaledError(_MaskedLoss):
    """`penalty((y - ŷ) / scale)` averaged over the targets that are present; `scale` is the
    targets' std, so the loss is that of standardised targets."""

    def __init__(self, name, scale=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = scale

    def penalty(self, error):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        weight, filled = _mask_and_fill(y_true)
        error = filled - ops.cast(y_pred, "float32")
        if self.scale is not None:
            error = error / ops.convert_to_tensor(self.scale, "float32")
        return masked_mean(self.penalty(error), weight)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedMeanSquaredError(_ScaledError):
    """Mean squared error over the targets that are present (targets standardised)."""

    def __init__(self, name="masked_mean_squared_error", scale=None, **kwargs):
        super().__init__(name=name, scale=scale, **kwargs)

    def penalty(self, error):
        return ops.square(error)


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedMeanAbsoluteError(_ScaledError):
    """Mean absolute error over the targets that are present (targets standardised): Roost's L1 loss."""

    def __init__(self, name="masked_mean_absolute_error", scale=None, **kwargs):
        super().__init__(name=name, scale=scale, **kwargs)

    def penalty(self, error):
        return ops.abs(error)


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedRobustL1(_MaskedLoss):
    """Roost's robust L1 (a Laplace likelihood): `y_pred [B, 2T]` holds T means, then T log σ, in
    target units; on standardised targets `√2·|y − ŷ|·e^{−log σ} + log σ`, over the labels present."""

    def __init__(self, name="masked_robust_l1", scale=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = scale

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        weight, filled = _mask_and_fill(y_true)
        y_pred = ops.cast(y_pred, "float32")
        n = ops.shape(y_true)[-1]
        mean, log_sigma = y_pred[:, :n], y_pred[:, n:]
        error = filled - mean
        if self.scale is not None:
            scale = ops.convert_to_tensor(self.scale, "float32")
            error, log_sigma = error / scale, log_sigma - ops.log(scale)
        return masked_mean(2.0**0.5 * ops.abs(error) * ops.exp(-log_sigma) + log_sigma, weight)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedSparseCategoricalCrossentropy(_MaskedLoss):
    """Cross-entropy of class probabilities `[B, C]` against class indices `[B, 1]` (NaN: no label)."""

    def __init__(self, name="masked_sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        weight, filled = _mask_and_fill(y_true)
        probabilities = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
        one_hot = ops.one_hot(ops.cast(filled, "int32"), ops.shape(probabilities)[-1])
        return masked_mean(-ops.sum(one_hot * ops.log(probabilities), axis=-1), weight)
