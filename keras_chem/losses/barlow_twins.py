"""The Barlow Twins loss (Zbontar et al. 2021) as PretrainRoost computes it (spec B.3)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_chem")
class BarlowTwinsLoss(keras.losses.Loss):
    """`y_pred [B, 2D]`: the two views' projections side by side (`y_true` is ignored).

    Each view is normalised per feature with the batch's mean and (biased) variance, as a BatchNorm
    without affine parameters in training mode; `c = z1ᵀ z2 / B` is their cross-correlation, and
    `L = Σ_i (1 − c_ii)² + λ Σ_{i≠j} c_ij²`. B is the actual batch size (the original divides by the
    configured one, which shrinks the loss of a short last batch).
    """

    def __init__(self, redundancy_weight: float = 0.0051, epsilon: float = 1e-5, name="barlow_twins", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction=None, **kwargs)
        self.redundancy_weight = float(redundancy_weight)
        self.epsilon = float(epsilon)

    def _normalised(self, z):
        mean = ops.mean(z, axis=0, keepdims=True)
        return (z - mean) / ops.sqrt(ops.mean(ops.square(z - mean), axis=0, keepdims=True) + self.epsilon)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        width = ops.shape(y_pred)[-1] // 2
        z1, z2 = self._normalised(y_pred[:, :width]), self._normalised(y_pred[:, width:])
        c = ops.matmul(ops.transpose(z1), z2) / ops.cast(ops.shape(y_pred)[0], "float32")
        diagonal = ops.diagonal(c)
        on_diagonal = ops.sum(ops.square(1.0 - diagonal))
        off_diagonal = ops.sum(ops.square(c)) - ops.sum(ops.square(diagonal))
        return on_diagonal + self.redundancy_weight * off_diagonal

    def get_config(self):
        return {**super().get_config(), "redundancy_weight": self.redundancy_weight, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_chem")
class BarlowTwinsWithRegression(BarlowTwinsLoss):
    """PretrainRoost's combined loss (`BT_Magpie`): `y_pred [B, 2D + F]` holds the two views'
    projections, then F regressed values against `y_true [B, F]`; Barlow Twins + `weight` × MSE."""

    def __init__(self, projection_width: int, weight: float = 0.1, name="barlow_twins_with_regression", **kwargs):
        super().__init__(name=name, **kwargs)
        self.projection_width = int(projection_width)
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        views, values = y_pred[:, : 2 * self.projection_width], y_pred[:, 2 * self.projection_width :]
        error = ops.mean(ops.square(ops.cast(y_true, "float32") - values))
        return super().call(None, views) + self.weight * error

    def get_config(self):
        return {**super().get_config(), "projection_width": self.projection_width, "weight": self.weight}
