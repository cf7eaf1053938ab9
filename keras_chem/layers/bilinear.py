"""A bilinear form between two sets of vectors (PyTorch's `nn.Bilinear`, over all pairs)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_chem")
class PairBilinear(keras.layers.Layer):
    """`call(a [B, N, d], b [B, M, e])` → `[B, N, M, units]` with `out[..., k] = a_n W_k b_mᵀ + bias_k`."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, a_shape, b_shape=None):
        b_shape = b_shape or a_shape
        self.kernel = self.add_weight(shape=(self.units, int(a_shape[-1]), int(b_shape[-1])), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, a, b):
        left = ops.einsum("bnd,kde->bnke", a, self.kernel)
        return ops.einsum("bnke,bme->bnmk", left, b) + self.bias

    def compute_output_shape(self, a_shape, b_shape=None):
        b_shape = b_shape or a_shape
        return (a_shape[0], a_shape[1], b_shape[1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
