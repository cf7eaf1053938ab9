"""Sum, mean or max of the real atoms' vectors: the fixed readouts attention pooling is measured against."""

from __future__ import annotations

import keras
from keras import ops

POOLINGS = ("sum", "mean", "max")


@keras.saving.register_keras_serializable(package="keras_chem")
class AtomPooling(keras.layers.Layer):
    """`x [B, N, F]`, `real [B, N] bool` → `[B, F]`: the sum, mean or max over the real atoms (0 where none is real)."""

    def __init__(self, mode: str = "sum", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
        self.mode = mode

    def call(self, x, real):
        real = ops.expand_dims(ops.cast(real, "bool"), -1)
        if self.mode == "max":
            return ops.where(ops.any(real, axis=1), ops.max(ops.where(real, x, float("-inf")), axis=1), 0.0)
        total = ops.sum(ops.where(real, x, 0.0), axis=1)
        if self.mode == "sum":
            return total
        return total / ops.maximum(ops.sum(ops.cast(real, x.dtype), axis=1), 1.0)

    def compute_output_shape(self, x_shape, real_shape=None):
        return (x_shape[0], x_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
