"""Set Transformer readout (Lee et al. 2019) as the attention-based pooling paper used it (Buterez et al.
2023; spec C.1): multihead attention blocks over a padded set of atom vectors, learnable seeds.

Two modes:
- `masked` (our default): padded atoms are neither keys nor queries, scores scaled by √(head dim).
- `faithful`: the original's arithmetic: padded atoms zeroed and padded to a fixed `max_nodes` M,
  no mask anywhere (zero rows are keys, values and queries, so the result depends on M), scores
  scaled by √(full dim).
Both project the query for the residual (`O = Q' + A V'`), then `O + act(fc_o(O))`, and average the
decoder's output over the seeds.
"""

from __future__ import annotations

import keras
from keras import ops

MODES = ("masked", "faithful")
_NEGATIVE = -1e9


def _split_heads(x, heads: int):
    """`[B, S, D]` → `[B, heads, S, D / heads]`, head h holding features h·D/heads … (h+1)·D/heads − 1."""
    shape = ops.shape(x)
    return ops.transpose(ops.reshape(x, (shape[0], shape[1], heads, x.shape[-1] // heads)), (0, 2, 1, 3))


@keras.saving.register_keras_serializable(package="keras_chem")
class MultiheadAttentionBlock(keras.layers.Layer):
    """`MAB(Q, K)`: `O = Q' + softmax(Q' K'ᵀ / √s) V'` per head (primes: linear maps to `dim`), then
    `O + act(fc_o(O))`. `call(queries [B, Q, ·], keys [B, S, ·], key_mask [B, S] = None,
    query_mask [B, Q] = None)` → `[B, Q, dim]`; masked keys get no attention, masked queries give 0."""

    def __init__(self, dim: int, heads: int, mode: str = "masked", activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.mode, self.activation = int(dim), int(heads), mode, activation
        self.fc_q, self.fc_k, self.fc_v, self.fc_o = (keras.layers.Dense(self.dim, name=n) for n in ("fc_q", "fc_k", "fc_v", "fc_o"))
        self.act = keras.activations.get(activation)

    def build(self, queries_shape, keys_shape=None, key_mask_shape=None, query_mask_shape=None):
        keys_shape = queries_shape if keys_shape is None else keys_shape
        self.fc_q.build(tuple(queries_shape))
        self.fc_k.build(tuple(keys_shape))
        self.fc_v.build(tuple(keys_shape))
        self.fc_o.build(tuple(queries_shape[:-1]) + (self.dim,))

    def attention(self, q, keys, key_mask=None):
        """Softmax weights `[B, heads, Q, S]` of the projected queries `q` over `keys`."""
        k = _split_heads(self.fc_k(keys), self.heads)
        scale = self.dim if self.mode == "faithful" else self.dim // self.heads
        scores = ops.matmul(_split_heads(q, self.heads), ops.transpose(k, (0, 1, 3, 2))) / (scale**0.5)
        if key_mask is not None:
            real = ops.expand_dims(ops.expand_dims(ops.cast(key_mask, "bool"), 1), 1)
            scores = ops.where(real, scores, _NEGATIVE)
        if scores.shape[-1] == 1:  # one key (a decoder over one seed): all the weight on it
            return ops.ones_like(scores)
        return ops.softmax(scores, axis=-1)

    def call(self, queries, keys, key_mask=None, query_mask=None):
        q = self.fc_q(queries)
        attended = ops.matmul(self.attention(q, keys, key_mask), _split_heads(self.fc_v(keys), self.heads))
        shape = ops.shape(q)
        out = q + ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (shape[0], shape[1], self.dim))
        out = out + self.act(self.fc_o(out))
        if query_mask is not None:
            out = ops.where(ops.expand_dims(ops.cast(query_mask, "bool"), -1), out, 0.0)
        return out

    def compute_output_shape(self, queries_shape, *args, **kwargs):
        return tuple(queries_shape[:-1]) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "heads": self.heads, "mode": self.mode, "activation": self.activation}


@keras.saving.register_keras_serializable(package="keras_chem")
class SetAttentionBlock(MultiheadAttentionBlock):
    """`SAB(X) = MAB(X, X)`; `call(x [B, S, ·], real [B, S] = None)`."""

    def build(self, x_shape, real_shape=None):
        super().build(x_shape, x_shape)

    def call(self, x, real=None):
        return super().call(x, x, key_mask=real, query_mask=real)


@keras.saving.register_keras_serializable(package="keras_chem")
class PoolingByMultiheadAttention(MultiheadAttentionBlock):
    """`PMA(X) = MAB(S, X)` with `seeds` learnable vectors S; `call(x [B, S, dim], real)` → `[B, seeds, dim]`."""

    def __init__(self, dim: int, heads: int, seeds: int = 1, **kwargs):
        super().__init__(dim, heads, **kwargs)
        self.seeds = int(seeds)

    def build(self, x_shape, real_shape=None):
        self.seed_vectors = self.add_weight(shape=(self.seeds, self.dim), initializer="glorot_uniform", name="seed_vectors")
        super().build((x_shape[0], self.seeds, self.dim), x_shape)

    def seed_queries(self, x):
        return ops.cast(ops.broadcast_to(ops.expand_dims(self.seed_vectors, 0), (ops.shape(x)[0], self.seeds, self.dim)), x.dtype)

    def call(self, x, real=None):
        return super().call(self.seed_queries(x), x, key_mask=real)

    def compute_output_shape(self, x_shape, *args, **kwargs):
        return (x_shape[0], self.seeds, self.dim)

    def get_config(self):
        return {**super().get_config(), "seeds": self.seeds}


@keras.saving.register_keras_serializable(package="keras_chem")
class SetTransformerPooling(keras.layers.Layer):
    """Atom vectors → one vector per graph: `SAB(d → hidden)` × `sabs` → `PMA(hidden, seeds)` →
    `SAB(hidden)` → `Linear(hidden → out_dim)` → mean over the seeds.

    `call(x [B, N, d], real [B, N] bool)` → `[B, out_dim]`. In `faithful` mode `max_nodes` (M) is
    required and N must not exceed it. `attention_scores(x, real)` gives the PMA's attention of each
    seed over the atoms, averaged over heads, `[B, seeds, N]`, for pictures.
    """

    def __init__(self, hidden: int = 512, out_dim: int = 128, heads: int = 16, seeds: int = 1, sabs: int = 2,
                 mode: str = "masked", activation: str = "relu", max_nodes: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if mode == "faithful" and not max_nodes:
            raise ValueError("faithful Set Transformer pooling needs max_nodes, the fixed M it pads to")
        self.hidden, self.out_dim, self.heads, self.seeds, self.sabs = int(hidden), int(out_dim), int(heads), int(seeds), int(sabs)
        self.mode, self.activation, self.max_nodes = mode, activation, (int(max_nodes) if max_nodes else None)
        block = {"mode": mode, "activation": activation}
        self.encoder = [SetAttentionBlock(self.hidden, self.heads, name=f"sab_{i}", **block) for i in range(self.sabs)]
        self.pma = PoolingByMultiheadAttention(self.hidden, self.heads, self.seeds, name="pma", **block)
        self.decoder = SetAttentionBlock(self.hidden, self.heads, name="decoder_sab", **block)
        self.output_layer = keras.layers.Dense(self.out_dim, name="output")

    def build(self, x_shape, real_shape=None):
        shape = (x_shape[0], self.max_nodes if self.mode == "faithful" else x_shape[1], x_shape[2])
        for sab in self.encoder:
            sab.build(shape)
            shape = shape[:2] + (self.hidden,)
        self.pma.build(shape)
        self.decoder.build((x_shape[0], self.seeds, self.hidden))
        self.output_layer.build((x_shape[0], self.seeds, self.hidden))

    def _encode(self, x, real):
        real = ops.cast(real, "bool")
        x = ops.where(ops.expand_dims(real, -1), x, 0.0)
        if self.mode == "faithful":
            shape = ops.shape(x)
            x = ops.concatenate([x, ops.zeros((shape[0], self.max_nodes - shape[1], x.shape[-1]), x.dtype)], axis=1)
            real = None
        for sab in self.encoder:
            x = sab(x, real)
        return x, real

    def call(self, x, real):
        encoded, real = self._encode(x, real)
        pooled = self.decoder(self.pma(encoded, real))
        return ops.mean(self.output_layer(pooled), axis=1)

    def attention_scores(self, x, real):
        if not self.built:
            self.build(tuple(x.shape))
        encoded, real = self._encode(x, real)
        weights = self.pma.attention(self.pma.fc_q(self.pma.seed_queries(encoded)), encoded, real)
        return ops.mean(weights, axis=1)[:, :, : ops.shape(x)[1]]

    def compute_output_shape(self, x_shape, real_shape=None):
        return (x_shape[0], self.out_dim)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "out_dim": self.out_dim, "heads": self.heads, "seeds": self.seeds,
                "sabs": self.sabs, "mode": self.mode, "activation": self.activation, "max_nodes": self.max_nodes}
