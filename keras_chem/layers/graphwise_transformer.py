"""CrysToGraph's graph-wise transformer (GwT) layer, per-crystal padded attention.

Spec: reference-implementations.md A.5 (upstream `GlobalTransformerLayer(256, 32, 8, edge_dim=76)`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_chem.layers.etgc import gather_nodes, masked_softmax, shape_dim

ATTENTION_MODES = ("softmax", "sum")


@keras.saving.register_keras_serializable(package="keras_chem")
class GraphWiseTransformer(keras.layers.Layer):
    """GwT: edge-to-node injection, self-attention over the atoms of each crystal, LN + FFN.

    Call: `h = layer(x, nbr_idx, nbr_mask, e, node_mask=None)` (same order as `ETGC`)
      x         [B, N, d_model]      atom features
      nbr_idx   [B, N, K] int        neighbour j of centre atom i
      nbr_mask  [B, N, K] bool
      e         [B, N, K, edge_dim]  edge features
      node_mask [B, N] bool          real atoms (None: all real)
    Returns `[B, N, d_model]`, 0 for padded atoms.

    1. x <- x + mean over real edges j -> i with j != i (periodic self-images dropped) of
       Linear(edge_dim -> d)(e_ji); 0 for an atom without such an edge.
    2. attention over the real atoms of the same crystal (key mask), heads concatenated, L_O:
       - `attention="softmax"` (paper): Q (bias), K (no bias), V (bias), softmax(QK^T / sqrt(d_k)) V.
       - `attention="sum"` (what upstream code computes, its PyG softmax normalises every score
         by itself): every atom receives sum_{real j in crystal} V_j. Q and K do not influence
         the output in that mode, so they are not created (no dead weights, no missing grads).
    3. h = LN(L_O(attn)) + x;  h = LN(Linear(2d -> d)(GELU_erf(Linear(d -> 2d)(h)))) + h;  h = h + b
       (b learnable, zero-initialised).
    The network applies Softplus after the GwT; `output_softplus=True` does it here instead
    (default False, so the layer is exactly upstream's module).
    """

    def __init__(
        self,
        d_model=256,
        d_k=32,
        heads=8,
        edge_dim=76,
        attention="softmax",
        ffn_mult=2,
        epsilon=1e-5,
        output_softplus=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.d_model = int(d_model)
        self.d_k = int(d_k)
        self.heads = int(heads)
        self.edge_dim = int(edge_dim)
        self.attention = attention
        self.ffn_mult = int(ffn_mult)
        self.epsilon = float(epsilon)
        self.output_softplus = bool(output_softplus)
        hd = self.heads * self.d_k
        self.edge_in = keras.layers.Dense(self.d_model, name="edge_in")
        if attention == "softmax":
            self.q_proj = keras.layers.Dense(hd, name="q_proj")
            self.k_proj = keras.layers.Dense(hd, use_bias=False, name="k_proj")
        self.v_proj = keras.layers.Dense(hd, name="v_proj")
        self.out_proj = keras.layers.Dense(self.d_model, name="out_proj")
        self.attn_ln = keras.layers.LayerNormalization(epsilon=self.epsilon, name="attn_ln")
        self.ff1 = keras.layers.Dense(self.ffn_mult * self.d_model, name="ff1")
        self.ff2 = keras.layers.Dense(self.d_model, name="ff2")
        self.ffn_ln = keras.layers.LayerNormalization(epsilon=self.epsilon, name="ffn_ln")

    def build(self, x_shape, nbr_idx_shape=None, nbr_mask_shape=None, e_shape=None, node_mask_shape=None):
        d, hd = self.d_model, self.heads * self.d_k
        if x_shape[-1] != d:
            raise ValueError(f"GraphWiseTransformer: x has {x_shape[-1]} features, expected d_model={d}")
        self.edge_in.build((None, self.edge_dim))
        if self.attention == "softmax":
            self.q_proj.build((None, d))
            self.k_proj.build((None, d))
        self.v_proj.build((None, d))
        self.out_proj.build((None, hd))
        self.attn_ln.build((None, d))
        self.ff1.build((None, d))
        self.ff2.build((None, self.ffn_mult * d))
        self.ffn_ln.build((None, d))
        self.bias = self.add_weight(name="bias", shape=(d,), initializer="zeros")
        self.built = True

    def _heads(self, t):
        return ops.reshape(t, (-1, shape_dim(t, 1), self.heads, self.d_k))

    def call(self, x, nbr_idx, nbr_mask, e, node_mask=None):
        x = ops.cast(x, self.compute_dtype)
        e = ops.cast(e, self.compute_dtype)
        n = shape_dim(x, 1)
        if node_mask is None:
            node_mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        node_mask = ops.cast(node_mask, "bool")
        nm = ops.expand_dims(node_mask, -1)
        x = ops.where(nm, x, 0.0)  # padding zeroed on entry: garbage/NaN never reaches a gradient

        # 1. edge -> node injection: mean over real, non-self-loop incoming edges.
        nbr_idx = ops.cast(nbr_idx, "int32")
        self_loop = ops.equal(nbr_idx, ops.expand_dims(ops.expand_dims(ops.arange(n, dtype="int32"), 0), -1))
        nbr_real = ops.cast(gather_nodes(ops.cast(node_mask, "int32"), nbr_idx), "bool")
        keep = ops.cast(nbr_mask, "bool") & nm & nbr_real & ops.logical_not(self_loop)
        count = ops.sum(ops.cast(keep, x.dtype), axis=2, keepdims=True)  # [B,N,1]
        e_sum = ops.sum(ops.where(ops.expand_dims(keep, -1), e, 0.0), axis=2)
        e_mean = e_sum / ops.maximum(count, 1.0)
        x = x + ops.where(count > 0, self.edge_in(e_mean), 0.0)

        # 2. attention over the real atoms of each crystal.
        v = self.v_proj(x)
        if self.attention == "sum":
            attn = ops.sum(ops.where(nm, v, 0.0), axis=1, keepdims=True)
            attn = ops.broadcast_to(attn, ops.shape(v))
        else:
            q, k, vh = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(v)
            scores = ops.einsum("bnhd,bmhd->bhnm", q, k) / math.sqrt(self.d_k)
            key_mask = ops.expand_dims(ops.expand_dims(node_mask, 1), 1)  # [B,1,1,N]
            w = masked_softmax(scores, key_mask, axis=-1)
            vh = ops.where(ops.expand_dims(nm, -1), vh, 0.0)
            attn = ops.reshape(ops.einsum("bhnm,bmhd->bnhd", w, vh), (-1, n, self.heads * self.d_k))

        # 3. post-LN residual blocks + zero-initialised bias.
        h = self.attn_ln(self.out_proj(attn)) + x
        h = self.ffn_ln(self.ff2(ops.gelu(self.ff1(h), approximate=False))) + h
        h = h + ops.cast(self.bias, h.dtype)
        if self.output_softplus:
            h = ops.softplus(h)
        return ops.where(nm, h, 0.0)

    def compute_output_shape(self, x_shape, nbr_idx_shape=None, nbr_mask_shape=None, e_shape=None, node_mask_shape=None):
        return tuple(x_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "d_k": self.d_k,
            "heads": self.heads,
            "edge_dim": self.edge_dim,
            "attention": self.attention,
            "ffn_mult": self.ffn_mult,
            "epsilon": self.epsilon,
            "output_softplus": self.output_softplus,
        }
