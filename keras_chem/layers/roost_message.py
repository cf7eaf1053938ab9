"""One Roost message-passing step over the element pairs of a padded composition (spec B.2 steps 2-4)."""

from __future__ import annotations

import keras
from keras import ops

from keras_chem.layers.weighted_attention_pooling import WeightedAttentionPooling


@keras.saving.register_keras_serializable(package="keras_chem")
class RoostMessage(keras.layers.Layer):
    """`h [B, M, d]`, `fractions [B, M]`, `mask [B, M] bool` → `h' [B, M, d]`, 0 for padded elements.

    Every element i attends over all real elements j of its composition, itself included, with
    pair features `[h_i ‖ h_j]` and the neighbour's fraction `w_j` as attention weight
    (`WeightedAttentionPooling`, heads averaged); then `h_i ← h_i + pooled_i` (no activation). The
    pair features are never built: the first layer of the gate and message networks is evaluated
    per element and added per pair (`pair_first_layers`).
    """

    def __init__(self, heads: int = 3, hidden: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.heads = int(heads)
        self.hidden = int(hidden)
        self.pooling = None

    def build(self, h_shape, fractions_shape=None, mask_shape=None):
        d = int(h_shape[-1])
        self.pooling = WeightedAttentionPooling(d, heads=self.heads, hidden=self.hidden, name="pair_pooling")
        self.pooling.build((h_shape[0], h_shape[1], h_shape[1], 2 * d))

    def call(self, h, fractions, mask):
        mask = ops.cast(mask, "bool")
        h = ops.where(ops.expand_dims(mask, -1), h, ops.zeros_like(h))
        gate_hidden, message_hidden = self.pooling.pair_first_layers(h)
        pooled = self.pooling.attend(gate_hidden, message_hidden, ops.expand_dims(fractions, 1), ops.expand_dims(mask, 1))
        return ops.where(ops.expand_dims(mask, -1), h + pooled, ops.zeros_like(h))

    def compute_output_shape(self, h_shape, fractions_shape=None, mask_shape=None):
        return h_shape

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "hidden": self.hidden}
