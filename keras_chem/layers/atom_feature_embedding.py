"""A learned vector per atom from its categorical chemistry (`featurizers/atom_features.py`), added to its token's."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_chem")
class AtomFeatureEmbedding(keras.layers.Layer):
    """`call(ids [B, L, F] int)` → `[B, L, dim]`: the sum of one embedding per feature, id 0 ("not an atom")
    giving zeros. Zero-initialized, so a pretrained encoder starts where its pretraining left it."""

    def __init__(self, vocabulary_sizes, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_sizes, self.dim = [int(n) for n in vocabulary_sizes], int(dim)
        offsets, total = [], 0
        for size in self.vocabulary_sizes:
            offsets.append(total)
            total += size
        self._offsets, self._total = offsets, total

    def build(self, ids_shape):
        self.table = self.add_weight(shape=(self._total, self.dim), initializer="zeros", name="table")

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        vectors = ops.take(self.table, ids + ops.convert_to_tensor(self._offsets, dtype="int32"), axis=0)
        atoms = ops.cast(ops.not_equal(ids, 0), vectors.dtype)
        return ops.sum(vectors * ops.expand_dims(atoms, -1), axis=-2)

    def compute_output_shape(self, ids_shape):
        return tuple(ids_shape[:-1]) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "vocabulary_sizes": self.vocabulary_sizes, "dim": self.dim}
