"""CGCNN's graph convolution (Xie & Grossman 2018; spec D.1 ConvLayer) on padded neighbour tensors."""

from __future__ import annotations

import keras
from keras import ops

from keras_chem.layers.etgc import gather_nodes
from keras_chem.layers.masked_batch_norm import MaskedBatchNormalization


@keras.saving.register_keras_serializable(package="keras_chem")
class CGCNNConv(keras.layers.Layer):
    """`z_ij = [h_i ‖ h_j ‖ e_ij]` → Linear(2d + f → 2d) → BatchNorm → sigmoid(filter) ⊙
    softplus(core), summed over the real neighbours → BatchNorm → `softplus(h_i + ·)`.

    `call(h [B, N, d], nbr_idx [B, N, K], nbr_mask [B, N, K], e [B, N, K, f], atom_mask [B, N])`
    → `[B, N, d]`, 0 on padding atoms. Both batch normalisations see real entries only (real
    neighbour slots of real atoms, then real atoms), so padding never moves their statistics.

    The Linear keeps one `[2d + f, 2d]` kernel, as in the original, but applies its three row blocks
    separately: the `h_i` and `h_j` blocks per atom, before the gather, and only the edge block per
    neighbour slot.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.edge_norm = MaskedBatchNormalization(momentum=0.9, epsilon=1e-5, name="edge_norm")
        self.sum_norm = MaskedBatchNormalization(momentum=0.9, epsilon=1e-5, name="sum_norm")

    def build(self, h_shape, nbr_idx_shape=None, nbr_mask_shape=None, e_shape=None, atom_mask_shape=None):
        self.build_weights(tuple(h_shape), tuple(e_shape))

    def build_weights(self, h_shape: tuple, e_shape: tuple) -> None:
        """The Linear's kernel and bias, and the two normalisations for atoms shaped `h_shape` and edges `e_shape`."""
        d, f = int(h_shape[-1]), int(e_shape[-1])
        self.kernel = self.add_weight(shape=(2 * d + f, 2 * d), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(2 * d,), initializer="zeros", name="bias")
        self.edge_norm.build(e_shape[:-1] + (2 * d,))
        self.sum_norm.build(h_shape)

    def call(self, h, nbr_idx, nbr_mask, e, atom_mask, training=None):
        d = h.shape[-1]
        atom_mask = ops.cast(atom_mask, "bool")
        edge_mask = ops.logical_and(ops.cast(nbr_mask, "bool"), ops.expand_dims(atom_mask, -1))
        h = ops.where(ops.expand_dims(atom_mask, -1), h, 0.0)
        centre = ops.matmul(h, self.kernel[:d]) + self.bias
        neighbour = gather_nodes(ops.matmul(h, self.kernel[d : 2 * d]), nbr_idx)
        gated = ops.expand_dims(centre, 2) + neighbour + ops.matmul(ops.cast(e, h.dtype), self.kernel[2 * d :])
        gated = self.edge_norm(gated, mask=edge_mask, training=training)
        message = ops.sigmoid(gated[..., :d]) * ops.softplus(gated[..., d:])
        summed = ops.sum(ops.where(ops.expand_dims(edge_mask, -1), message, 0.0), axis=2)
        summed = self.sum_norm(summed, mask=atom_mask, training=training)
        return ops.where(ops.expand_dims(atom_mask, -1), ops.softplus(h + summed), 0.0)

    def compute_output_shape(self, h_shape, *args, **kwargs):
        return tuple(h_shape)
