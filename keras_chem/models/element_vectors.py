"""The first layer of every model that starts from a per-element table (`featurizers/element_tables.py`)."""

from __future__ import annotations


def element_vectors(atom_z, features: str, learned_width: int, name: str = "element_vectors"):
    """`atom_z [...]` → the table's vector of each atomic number (frozen), or a learned
    `learned_width`-wide vector per element for `features = "learned"`; row 0 (padding) is 0."""
    import keras

    from keras_chem.featurizers.cgcnn_elements import MAX_Z
    from keras_chem.featurizers.element_tables import element_table

    table = element_table(features)
    if table is None:
        return keras.layers.Embedding(MAX_Z + 1, learned_width, name=name)(atom_z)
    layer = keras.layers.Embedding(len(table), table.shape[1], trainable=False, name=name)
    vectors = layer(atom_z)
    layer.set_weights([table])
    return vectors
