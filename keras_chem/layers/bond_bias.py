"""An attention bias from the molecular graph: how many bonds apart two atoms are, and the kind of bond that
joins two bonded atoms (Graphormer's spatial and edge encodings, on the atoms' bond lists of
`featurizers/bonds.py`).

A conformer's distances blur connectivity (a folded chain brings far atoms close); this bias is exact.
"""

from __future__ import annotations

import keras
from keras import ops


# bonds apart, bucketed as 0, 1, 2, 3-4, 5-8 and farther: each bucket's edge is a power of two, so the reach
# matrices come from squaring (three matrix products) rather than one product per hop
HOP_BUCKETS = 6


@keras.saving.register_keras_serializable(package="keras_chem")
class BondPathBias(keras.layers.Layer):
    """`call(bonds [B, L, K, 2] (partner position, bond kind), atom_mask [B, L])` → attention bias `[B, heads, L, L]`:
    one learned number per head for each pair of atoms, by the bond that joins them (row `HOP_BUCKETS + kind - 1`
    of `table`) or else by the number of bonds between them (row 0, 2, 3, 4 or 5 for 0, 2, 3-4, 5-8 bonds and
    farther or not connected; row 1, one bond, is never read since a bond has a kind); 0 unless i and j are atoms.
    Zero-initialized, so a pretrained encoder starts where its pretraining left it."""

    def __init__(self, heads: int, bond_kinds: int, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.bond_kinds = int(heads), int(bond_kinds)

    def build(self, bonds_shape, atom_mask_shape=None):
        self.table = self.add_weight(shape=(HOP_BUCKETS + self.bond_kinds, self.heads), initializer="zeros", name="table")

    def call(self, bonds, atom_mask):
        bonds = ops.cast(bonds, "int32")
        partners = bonds[..., 0]
        length = ops.shape(partners)[1]
        # [B, L, K, L]: atom i's k-th bond goes to atom l (an empty slot, partner 0, goes nowhere)
        partner_of = ops.one_hot(partners, length, dtype="float32") * ops.expand_dims(ops.cast(partners > 0, "float32"), -1)
        kind = ops.einsum("bikl,bik->bil", partner_of, ops.cast(bonds[..., 1], "float32"))  # 0: not bonded
        identity = ops.one_hot(ops.arange(length), length, dtype="float32") * ops.ones_like(kind)
        reach = [ops.minimum(ops.sum(partner_of, axis=2) + identity, 1.0)]  # within 1 bond, then 2, 4 and 8
        for _ in range(3):
            reach.append(ops.minimum(ops.matmul(reach[-1], reach[-1]), 1.0))
        bucket = (HOP_BUCKETS - 1) - sum(reach) - identity
        rows = ops.cast(ops.where(kind > 0, HOP_BUCKETS - 1 + kind, bucket), "int32")
        bias = ops.transpose(ops.take(ops.cast(self.table, self.compute_dtype), rows, axis=0), (0, 3, 1, 2))
        atoms = ops.cast(atom_mask, self.compute_dtype)
        return bias * ops.expand_dims(ops.expand_dims(atoms, 2) * ops.expand_dims(atoms, 1), 1)

    def compute_output_shape(self, bonds_shape, atom_mask_shape=None):
        return (bonds_shape[0], self.heads, bonds_shape[1], bonds_shape[1])

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "bond_kinds": self.bond_kinds}
