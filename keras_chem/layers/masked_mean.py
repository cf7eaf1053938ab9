"""Mean over the real entries of a padded axis."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedMean(keras.layers.Layer):
    """`x [B, N, F]`, `real [B, N] bool` → mean over the real entries `[B, F]` (0 where none is real)."""

    def call(self, x, real):
        weights = ops.cast(ops.expand_dims(real, -1), x.dtype)
        return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, x_shape, real_shape=None):
        return (x_shape[0], x_shape[2])
