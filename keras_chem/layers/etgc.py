"""CrysToGraph's edge-engaged transformer graph convolution (eTGC), in padded form.

Spec: reference-implementations.md A.3 (upstream `TransformerConvLayer`). The same layer runs on
the crystal graph (nodes = atoms) and on its line graph (nodes = directed edges).

Also home of two small padded-graph helpers used by the other CrysToGraph layers:
`gather_nodes` (x[b, idx[b, ...]]) and `masked_softmax`.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_chem.layers.masked_batch_norm import MaskedBatchNormalization


def shape_dim(x, axis):
    """`x.shape[axis]` when static, else the dynamic size (TF graphs with `Input((None, ...))`)."""
    d = x.shape[axis]
    return d if d is not None else ops.shape(x)[axis]


def gather_nodes(x, idx):
    """`out[b, s...] = x[b, idx[b, s...]]` for `x [B, M, F...]`, `idx [B, S...]` -> `[B, S..., F...]`.

    The batch axis is folded into the node axis with offsets `b * M` and one `ops.take(axis=0)`
    does the gather (a plain `tf.gather` / `jnp.take`: no broadcast index tensors, jit friendly,
    and `B` may be unknown). Indices are clipped to `[0, M-1]`, so a garbage index in a padded
    slot can never fail or read another crystal; the caller masks those slots.
    """
    m = shape_dim(x, 1)
    feat = tuple(shape_dim(x, a) for a in range(2, len(x.shape)))
    idx = ops.clip(ops.cast(idx, "int32"), 0, m - 1)
    bsz = ops.shape(idx)[0]
    offsets = ops.arange(bsz, dtype="int32") * m
    offsets = ops.reshape(offsets, (-1,) + (1,) * (len(idx.shape) - 1))
    flat_idx = ops.reshape(idx + offsets, (-1,))
    flat_x = ops.reshape(x, (-1,) + feat)
    out = ops.take(flat_x, flat_idx, axis=0)
    return ops.reshape(out, (-1,) + tuple(shape_dim(idx, a) for a in range(1, len(idx.shape))) + feat)


def masked_softmax(scores, mask, axis=-1):
    """Softmax of `scores` over `axis` restricted to `mask`; all-masked rows give all zeros.

    Masked entries never enter the max, the exponent or the sum (`where`, not multiply), so a
    NaN/inf in a padded score cannot leak, and gradients stay finite.
    """
    mask = ops.cast(mask, "bool")
    neg = ops.where(mask, scores, ops.full_like(scores, -math.inf))
    shift = ops.stop_gradient(ops.max(neg, axis=axis, keepdims=True))
    shift = ops.where(ops.isfinite(shift), shift, ops.zeros_like(shift))
    ex = ops.where(mask, ops.exp(ops.where(mask, scores - shift, ops.zeros_like(scores))), 0.0)
    denom = ops.sum(ex, axis=axis, keepdims=True)
    return ex / ops.where(denom > 0, denom, ops.ones_like(denom))


@keras.saving.register_keras_serializable(package="keras_chem")
class ETGC(keras.layers.Layer):
    """eTGC block: edge-aware multi-head graph attention + BatchNorm FFN, Softplus outputs.

    Upstream defaults: atoms `ETGC(256, 32, 8, 76)`; line graph `ETGC(76, 24, 8, 30)` with the
    76-d edge features as nodes (`[B, N*K, 76]`) and the 30-d angle features as edges.

    Call: `x, e = layer(x, nbr_idx, nbr_mask, e, node_mask=None)`
      x         [B, M, d_model]      node features
      nbr_idx   [B, M, K'] int       neighbour j of node i (index into M); message j -> i
      nbr_mask  [B, M, K'] bool      real neighbour slots
      e         [B, M, K', edge_dim] feature of edge (i <- j at that slot)
      node_mask [B, M] bool          real nodes (None: all real)
    Returns `(x' [B, M, d_model], e' [B, M, K', edge_dim])`; padded nodes/edges are set to 0.

    An edge is real when `nbr_mask` is set and both its centre and its neighbour are real
    nodes. Per head (A.3): Q, K, V = Linear(d -> H*d_k); e_hat = W_e e (no bias);
    k' = K_e([K_i | K_j | e_hat]), v' = V_e([V_i | V_j | e_hat]) with K_e, V_e: 3d_k -> d_k shared
    by all heads; alpha = softmax over the real neighbours of i of <Q_i, k'> / sqrt(d_k);
    m_i = sum alpha v'. x' = LN(Linear(m)) + x; e' = LN(Linear(alpha * e_hat)) + e; then
    y = BN(Linear(4y -> y)(GELU_erf(Linear(y -> 4y)(y')))) + y' for y in (x, e); Softplus.
    A node without any real neighbour gets a zero message.

    K_e / V_e are applied as K_i W1 + K_j W2 + e_hat W3 + b with W = [W1; W2; W3] (the same
    Linear(3d_k -> d_k)), and the scores and messages are reassociated so that per edge only the
    gathered neighbour terms and contractions with the raw edge features remain: no per-edge
    projection of e on the line graph, whose edges are K times as many as the atoms' (see `_attend`).

    BatchNorm statistics use real rows only (`MaskedBatchNormalization`: Keras 3's masked moments,
    over the global batch under data-parallel training; checked in the tests). LayerNorm/BatchNorm epsilons and the
    BN momentum default to PyTorch's values (1e-5, momentum 0.1 = Keras 0.9). Keras BN updates
    the moving variance with the biased batch variance (PyTorch uses the unbiased one).

    `update_edges=False` skips the edge branch (e' = LN/Linear/FFN/BN) and returns `e` as given
    (padding zeroed). Use it for the line-graph eTGC: upstream discards that layer's edge
    output (A.4), so those weights would never receive a gradient and would only cost compute.
    """

    def __init__(
        self,
        d_model,
        d_k,
        heads,
        edge_dim,
        ffn_mult=4,
        dropout=0.0,
        epsilon=1e-5,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        update_edges=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_model = int(d_model)
        self.d_k = int(d_k)
        self.heads = int(heads)
        self.edge_dim = int(edge_dim)
        self.ffn_mult = int(ffn_mult)
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.update_edges = bool(update_edges)
        hd = self.heads * self.d_k
        self.q_proj = keras.layers.Dense(hd, name="q_proj")
        self.k_proj = keras.layers.Dense(hd, name="k_proj")
        self.v_proj = keras.layers.Dense(hd, name="v_proj")
        self.e_proj = keras.layers.Dense(hd, use_bias=False, name="e_proj")
        self.k_edge = keras.layers.Dense(self.d_k, name="k_edge")
        self.v_edge = keras.layers.Dense(self.d_k, name="v_edge")
        self.attn_dropout = keras.layers.Dropout(self.dropout)
        self.node_out = keras.layers.Dense(self.d_model, name="node_out")
        self.node_ln = keras.layers.LayerNormalization(epsilon=self.epsilon, name="node_ln")
        self.node_ff1 = keras.layers.Dense(self.ffn_mult * self.d_model, name="node_ff1")
        self.node_ff2 = keras.layers.Dense(self.d_model, name="node_ff2")
        self.node_bn = MaskedBatchNormalization(momentum=self.bn_momentum, epsilon=self.bn_epsilon, name="node_bn")
        if self.update_edges:
            self.edge_out = keras.layers.Dense(self.edge_dim, name="edge_out")
            self.edge_ln = keras.layers.LayerNormalization(epsilon=self.epsilon, name="edge_ln")
            self.edge_ff1 = keras.layers.Dense(self.ffn_mult * self.edge_dim, name="edge_ff1")
            self.edge_ff2 = keras.layers.Dense(self.edge_dim, name="edge_ff2")
            self.edge_bn = MaskedBatchNormalization(momentum=self.bn_momentum, epsilon=self.bn_epsilon, name="edge_bn")

    def build(self, x_shape, nbr_idx_shape=None, nbr_mask_shape=None, e_shape=None, node_mask_shape=None):
        d, de, hd = self.d_model, self.edge_dim, self.heads * self.d_k
        if x_shape[-1] != d:
            raise ValueError(f"ETGC: x has {x_shape[-1]} features, expected d_model={d}")
        if e_shape is not None and e_shape[-1] != de:
            raise ValueError(f"ETGC: e has {e_shape[-1]} features, expected edge_dim={de}")
        for layer in (self.q_proj, self.k_proj, self.v_proj):
            layer.build((None, d))
        self.e_proj.build((None, de))
        self.k_edge.build((None, 3 * self.d_k))
        self.v_edge.build((None, 3 * self.d_k))
        self.node_out.build((None, hd))
        self.node_ln.build((None, d))
        self.node_ff1.build((None, d))
        self.node_ff2.build((None, self.ffn_mult * d))
        self.node_bn.build((None, None, d))
        if self.update_edges:
            self.edge_out.build((None, hd))
            self.edge_ln.build((None, de))
            self.edge_ff1.build((None, de))
            self.edge_ff2.build((None, self.ffn_mult * de))
            self.edge_bn.build((None, None, None, de))
        self.built = True

    def _split_heads(self, t):
        lead = tuple(shape_dim(t, a) for a in range(1, len(t.shape) - 1))
        return ops.reshape(t, (-1,) + lead + (self.heads, self.d_k))

    def _ffn(self, y, ff1, ff2, bn, mask, training):
        h = ff2(ops.gelu(ff1(y), approximate=False))
        return bn(h, training=training, mask=mask) + y

    def call(self, x, nbr_idx, nbr_mask, e, node_mask=None, training=None):
        x, e, node_mask, edge_mask = self._zero_padding(x, nbr_idx, nbr_mask, e, node_mask)
        alpha, msg = self._attend(x, nbr_idx, e, edge_mask, training)
        return self._update(x, e, alpha, msg, node_mask, edge_mask, training)

    def _zero_padding(self, x, nbr_idx, nbr_mask, e, node_mask):
        """Casts, the node and edge masks, and x / e zeroed on padding, so garbage (even NaN)
        there cannot reach a gradient."""
        x = ops.cast(x, self.compute_dtype)
        e = ops.cast(e, self.compute_dtype)
        if node_mask is None:
            node_mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        node_mask = ops.cast(node_mask, "bool")
        nbr_real = ops.cast(gather_nodes(ops.cast(node_mask, "int32"), nbr_idx), "bool")
        edge_mask = ops.cast(nbr_mask, "bool") & ops.expand_dims(node_mask, -1) & nbr_real
        x = ops.where(ops.expand_dims(node_mask, -1), x, 0.0)
        e = ops.where(ops.expand_dims(edge_mask, -1), e, 0.0)
        return x, e, node_mask, edge_mask

    def _attend(self, x, nbr_idx, e, edge_mask, training):
        """Attention weights `alpha [B,M,K',H]` and messages `[B,M,H,dk]`.

        K_e and V_e are linear, so the attention is evaluated in reassociated form (the same
        function): only the gathered neighbour terms are per edge, and the edge terms are
        contracted with the raw edge features, never projected per edge:
          <q_i, k'_ij> = <q_i, k_i W1 + b> + <q_i, (k W2)_j> + <e_ij, We_h W3 q_i>
          sum_j a_ij v'_ij = (sum_j a_ij)(v_i W1' + b') + sum_j a_ij (v W2')_j + (sum_j a_ij e_ij) We_h W3'
        """
        dk, f = self.d_k, self.edge_dim
        q = self._split_heads(self.q_proj(x))  # [B,M,H,dk]
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        kw = ops.cast(self.k_edge.kernel, k.dtype)
        vw = ops.cast(self.v_edge.kernel, v.dtype)
        we = ops.reshape(ops.cast(self.e_proj.kernel, e.dtype), (f, self.heads, dk))  # e_hat_h = e We_h
        nb = gather_nodes(ops.concatenate([ops.matmul(k, kw[dk : 2 * dk]), ops.matmul(v, vw[dk : 2 * dk])], axis=-1), nbr_idx)
        k_nb, v_nb = nb[..., :dk], nb[..., dk:]  # [B,M,K',H,dk]

        k_self = ops.matmul(k, kw[:dk]) + ops.cast(self.k_edge.bias, k.dtype)
        q_edge = ops.einsum("fhc,bmhc->bmhf", ops.einsum("fhd,dc->fhc", we, kw[2 * dk :]), q)
        scores = (
            ops.expand_dims(ops.sum(q * k_self, axis=-1), 2)
            + ops.einsum("bmhd,bmkhd->bmkh", q, k_nb)
            + ops.einsum("bmkf,bmhf->bmkh", e, q_edge)
        ) / math.sqrt(dk)  # [B,M,K',H]
        alpha = masked_softmax(scores, ops.expand_dims(edge_mask, -1), axis=2)
        alpha = self.attn_dropout(alpha, training=training)

        v_self = ops.matmul(v, vw[:dk]) + ops.cast(self.v_edge.bias, v.dtype)
        e_pooled = ops.einsum("bmkh,bmkf->bmhf", alpha, e)
        msg = (
            ops.expand_dims(ops.sum(alpha, axis=2), -1) * v_self
            + ops.einsum("bmkh,bmkhd->bmhd", alpha, v_nb)
            + ops.einsum("bmhf,fhc->bmhc", e_pooled, ops.einsum("fhd,dc->fhc", we, vw[2 * dk :]))
        )
        return alpha, msg

    def _update(self, x, e, alpha, msg, node_mask, edge_mask, training):
        """x' and e' from the attention: output projection, LayerNorm residual, BN FFN, Softplus."""
        m, kk = shape_dim(x, 1), shape_dim(e, 2)
        msg = ops.reshape(msg, (-1, m, self.heads * self.d_k))
        x1 = self.node_ln(self.node_out(msg)) + x
        x2 = self._ffn(x1, self.node_ff1, self.node_ff2, self.node_bn, node_mask, training)
        x_out = ops.where(ops.expand_dims(node_mask, -1), ops.softplus(x2), 0.0)
        if not self.update_edges:
            return x_out, e  # already zeroed on padding

        e_hat = self._split_heads(self.e_proj(e))  # [B,M,K',H,dk]
        e_att = ops.reshape(ops.expand_dims(alpha, -1) * e_hat, (-1, m, kk, self.heads * self.d_k))
        e1 = self.edge_ln(self.edge_out(e_att)) + e
        e2 = self._ffn(e1, self.edge_ff1, self.edge_ff2, self.edge_bn, edge_mask, training)
        e_out = ops.where(ops.expand_dims(edge_mask, -1), ops.softplus(e2), 0.0)
        return x_out, e_out

    def compute_output_shape(self, x_shape, nbr_idx_shape=None, nbr_mask_shape=None, e_shape=None, node_mask_shape=None):
        return tuple(x_shape), tuple(e_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "d_k": self.d_k,
            "heads": self.heads,
            "edge_dim": self.edge_dim,
            "ffn_mult": self.ffn_mult,
            "dropout": self.dropout,
            "epsilon": self.epsilon,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "update_edges": self.update_edges,
        }
