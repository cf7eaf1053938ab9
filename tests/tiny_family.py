"""A model family that exists only in the test suite: registered at run time, it must train,
predict and export through the runner without any edit outside `models/`, `layers/` and tests.

Inputs are element tokens (one per atom); the model is an embedding, a masked mean over atoms
and a dense layer. Its pooling layer is defined here, as a new family's own layer would be.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_chem.featurizers.progress import map_rows
from keras_chem.featurizers.tokens import Vocabulary, element_tokens
from keras_chem.models.base import Features, ModelFamily, PaddedPreprocessor
from keras_chem.models.heads import output_head


@keras.saving.register_keras_serializable(package="tiny_family")
class MeanOverAtoms(keras.layers.Layer):
    def call(self, x, atoms):
        weights = ops.cast(ops.expand_dims(ops.greater(atoms, 0), -1), x.dtype)
        return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, x_shape, atoms_shape=None):
        return (x_shape[0], x_shape[2])


class ElementBag(PaddedPreprocessor):
    padded_axes = {"atoms": (1,)}

    def __init__(self, cap=None):
        self.cap = cap
        self.vocabulary = Vocabulary.elements()

    def featurize(self, ids, inputs, input_kind):
        kept, token_lists, skipped = map_rows(ids, inputs, lambda item: element_tokens(item, input_kind), "elements")
        width = max((len(t) for t in token_lists), default=0)
        atoms = np.zeros((len(token_lists), width), dtype=np.int32)
        for row, tokens in enumerate(token_lists):
            atoms[row, : len(tokens)] = self.vocabulary.encode(tokens)[1:-1]
        return Features(kept, {"atoms": atoms}, skipped)

    def sizes(self, arrays):
        return np.count_nonzero(arrays["atoms"], axis=1)

    def input_signature(self):
        return {"atoms": ((self.cap,), "int32")}

    def get_config(self):
        return {"cap": self.cap}


class TinyFamily(ModelFamily):
    name = "tiny"
    options = {"width": 8}
    training_defaults = {"learning_rate": 3e-3, "epochs": 3, "patience": 3}
    embedding_layer = "pooled"

    def preprocessor(self, config):
        return ElementBag()

    def preprocessor_from_config(self, config):
        return ElementBag(**config)

    def build(self, config, preprocessor, task, target_stats=None):
        atoms = keras.Input((None,), dtype="int32", name="atoms")
        x = keras.layers.Embedding(len(preprocessor.vocabulary), config["width"], name="elements")(atoms)
        pooled = keras.layers.Identity(name="pooled")(MeanOverAtoms(name="mean")(x, atoms))
        return keras.Model({"atoms": atoms}, output_head(pooled, task, target_stats), name="tiny")


FAMILY = TinyFamily()
