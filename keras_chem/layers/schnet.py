"""SchNet's continuous-filter convolution and interaction block (Schütt et al. 2017; spec C.3, the
PyG layout the attention-pooling paper used) on padded neighbour tensors."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_chem.layers.etgc import gather_nodes

LOG_2 = math.log(2.0)


def shifted_softplus(x):
    """`softplus(x) − ln 2`, 0 at x = 0."""
    return ops.softplus(x) - LOG_2


def cosine_cutoff(distances, cutoff: float):
    """`½ (cos(π d / cutoff) + 1)`: 1 at d = 0, 0 at the cutoff."""
    return 0.5 * (ops.cos(distances * (math.pi / cutoff)) + 1.0)


@keras.saving.register_keras_serializable(package="keras_chem")
class GaussianSmearing(keras.layers.Layer):
    """`exp(−½ (d − μ_k)² / Δ²)` for `count` centres μ evenly spaced over [0, cutoff], Δ their spacing:
    `[...]` → `[..., count]`."""

    def __init__(self, cutoff: float = 10.0, count: int = 50, **kwargs):
        super().__init__(**kwargs)
        self.cutoff, self.count = float(cutoff), int(count)
        self.centres = np.linspace(0.0, self.cutoff, self.count)

    def call(self, distances):
        spacing = self.centres[1] - self.centres[0]
        offsets = ops.expand_dims(distances, -1) - ops.convert_to_tensor(self.centres, distances.dtype)
        return ops.exp((-0.5 / spacing**2) * ops.square(offsets))

    def compute_output_shape(self, distances_shape):
        return tuple(distances_shape) + (self.count,)

    def get_config(self):
        return {**super().get_config(), "cutoff": self.cutoff, "count": self.count}


@keras.saving.register_keras_serializable(package="keras_chem")
class SchNetInteraction(keras.layers.Layer):
    """`h_i + Linear(ssp(CFConv(h)_i))`, with `CFConv(h)_i = lin2(Σ_j lin1(h)_j ⊙ W_ij)` over the real
    neighbour slots and the filter `W_ij = [Linear(G → F) → ssp → Linear(F → F)](rbf_ij) · cutoff(d_ij)`.

    `call(h [B, N, d], nbr_idx [B, N, K], nbr_mask [B, N, K], rbf [B, N, K, G], distances [B, N, K])`
    → `[B, N, d]` (the residual included). A padded slot sends nothing; an atom with no neighbour
    keeps `h_i + Linear(ssp(lin2 bias))`, as in PyG.
    """

    def __init__(self, filters: int = 128, cutoff: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.cutoff = float(cutoff)

    def build(self, h_shape, nbr_idx_shape=None, nbr_mask_shape=None, rbf_shape=None, distances_shape=None):
        d = int(h_shape[-1])
        self.filter_in = keras.layers.Dense(self.filters, name="filter_in")
        self.filter_out = keras.layers.Dense(self.filters, name="filter_out")
        self.lin1 = keras.layers.Dense(self.filters, use_bias=False, name="lin1")
        self.lin2 = keras.layers.Dense(d, name="lin2")
        self.lin = keras.layers.Dense(d, name="lin")
        self.filter_in.build(tuple(rbf_shape))
        self.filter_out.build(tuple(rbf_shape[:-1]) + (self.filters,))
        self.lin1.build(tuple(h_shape))
        self.lin2.build(tuple(h_shape[:-1]) + (self.filters,))
        self.lin.build(tuple(h_shape))

    def call(self, h, nbr_idx, nbr_mask, rbf, distances):
        envelope = ops.expand_dims(cosine_cutoff(distances, self.cutoff), -1)
        real = ops.expand_dims(ops.cast(nbr_mask, "bool"), -1)
        weights = ops.where(real, self.filter_out(shifted_softplus(self.filter_in(rbf))) * envelope, 0.0)
        messages = gather_nodes(self.lin1(h), nbr_idx) * weights
        convolved = self.lin2(ops.sum(messages, axis=2))
        return h + self.lin(shifted_softplus(convolved))

    def compute_output_shape(self, h_shape, *args, **kwargs):
        return tuple(h_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "cutoff": self.cutoff}
