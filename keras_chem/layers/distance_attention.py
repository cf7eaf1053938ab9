"""Self-attention that sees 3-D geometry: a per-head bias from interatomic distances.

elEmBERT's tokens carry no connectivity; these layers add, to every attention score between two
atoms, a learned function of their distance (Gaussians on a grid, mixed per head), as in
Graphormer's spatial encoding and Uni-Mol's pair bias. Pairs with [CLS], [SEP] or padding get
no bias; padded keys get no attention.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_chem.layers.gaussian_expansion import GaussianExpansion
from keras_chem.layers.set_transformer import _NEGATIVE, _split_heads


@keras.saving.register_keras_serializable(package="keras_chem")
class PairDistanceBias(keras.layers.Layer):
    """`call(positions [B, L, 3], atom_mask [B, L])` → attention bias `[B, heads, L, L]`:
    `b_h(d_ij) = Σ_k w_hk exp(-(d_ij - μ_k)² / σ²)`, μ on `0 … cutoff` Å every `step`, 0 unless i and j are atoms."""

    def __init__(self, heads: int, cutoff: float = 8.0, step: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.cutoff, self.step = int(heads), float(cutoff), float(step)
        self.expansion = GaussianExpansion(0.0, self.cutoff, self.step, name="gaussians")
        self.mix = keras.layers.Dense(self.heads, use_bias=False, name="mix")

    def build(self, positions_shape, atom_mask_shape=None):
        self.mix.build((None, self.expansion.count))

    def call(self, positions, atom_mask):
        positions = ops.cast(positions, self.compute_dtype)
        difference = ops.expand_dims(positions, 2) - ops.expand_dims(positions, 1)
        distance = ops.sqrt(ops.sum(ops.square(difference), axis=-1) + 1e-12)
        bias = ops.transpose(self.mix(self.expansion(distance)), (0, 3, 1, 2))
        atoms = ops.cast(atom_mask, self.compute_dtype)
        pairs = ops.expand_dims(ops.expand_dims(atoms, 2) * ops.expand_dims(atoms, 1), 1)
        return bias * pairs

    def compute_output_shape(self, positions_shape, atom_mask_shape=None):
        batch, length = positions_shape[0], positions_shape[1]
        return (batch, self.heads, length, length)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "cutoff": self.cutoff, "step": self.step}


@keras.saving.register_keras_serializable(package="keras_chem")
class BiasedTransformerEncoder(keras.layers.Layer):
    """A post-LN transformer encoder block (as keras-hub's `TransformerEncoder`, `normalize_first=False`)
    whose attention scores get an additive bias: `call(x [B, L, D], bias [B, heads, L, L], padding_mask [B, L])`."""

    def __init__(self, intermediate_dim: int, num_heads: int, dropout: float = 0.0, layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim, self.num_heads = int(intermediate_dim), int(num_heads)
        self.dropout, self.layer_norm_epsilon = float(dropout), float(layer_norm_epsilon)

    def build(self, x_shape, bias_shape=None, padding_mask_shape=None):
        dim = int(x_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"embedding size {dim} is not divisible by {self.num_heads} heads")
        self.query, self.key, self.value, self.attention_output = (
            keras.layers.Dense(dim, name=name) for name in ("query", "key", "value", "attention_output")
        )
        self.intermediate = keras.layers.Dense(self.intermediate_dim, activation="relu", name="intermediate")
        self.output_dense = keras.layers.Dense(dim, name="output")
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(tuple(x_shape))
        self.output_dense.build(tuple(x_shape[:-1]) + (self.intermediate_dim,))
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="attention_norm")
        self.output_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="output_norm")
        self.attention_norm.build(tuple(x_shape))
        self.output_norm.build(tuple(x_shape))
        self.attention_dropout = keras.layers.Dropout(self.dropout)
        self.residual_dropout = keras.layers.Dropout(self.dropout)

    def call(self, x, bias, padding_mask, training=None):
        shape = ops.shape(x)
        head_dim = x.shape[-1] // self.num_heads
        q, k, v = (_split_heads(layer(x), self.num_heads) for layer in (self.query, self.key, self.value))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / (head_dim**0.5) + bias
        keys = ops.expand_dims(ops.expand_dims(ops.cast(padding_mask, "bool"), 1), 1)
        weights = self.attention_dropout(ops.softmax(ops.where(keys, scores, _NEGATIVE), axis=-1), training=training)
        attended = ops.reshape(ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3)), shape)
        x = self.attention_norm(x + self.residual_dropout(self.attention_output(attended), training=training))
        return self.output_norm(x + self.residual_dropout(self.output_dense(self.intermediate(x)), training=training))

    def compute_output_shape(self, x_shape, *args):
        return tuple(x_shape)

    def get_config(self):
        return {**super().get_config(), "intermediate_dim": self.intermediate_dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "layer_norm_epsilon": self.layer_norm_epsilon}
