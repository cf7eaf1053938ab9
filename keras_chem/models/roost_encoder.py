"""The Roost encoder, shared by the property model (`roost.py`) and pretraining (`roost_pretrain.py`)."""

from __future__ import annotations

INPUT_DTYPES = {"elem_z": "int32", "elem_frac": "float32", "elem_mask": "bool"}


def widths(value) -> list[int]:
    """Layer widths from a list or a comma-separated flag (`--trunk 1024,512`)."""
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    return [int(width) for width in value]


def build_encoder(config: dict, preprocessor):
    """Inputs → the pooled, trunk-transformed composition vector (`composition_embedding`, trunk_out wide):
    what the prediction heads and the pretraining objectives share."""
    import keras
    from keras import ops

    from keras_chem.layers.residual_network import ResidualNetwork
    from keras_chem.layers.roost_message import RoostMessage
    from keras_chem.layers.weighted_attention_pooling import WeightedAttentionPooling
    from keras_chem.models.element_vectors import element_vectors

    inputs = {name: keras.Input((None,), dtype=dtype, name=name) for name, dtype in INPUT_DTYPES.items()}
    elem_z, fractions, mask = inputs["elem_z"], inputs["elem_frac"], inputs["elem_mask"]
    vectors = element_vectors(elem_z, config["element_features"], config["element_embedding"])
    h = keras.layers.Dense(config["elem_fea_len"] - 1, name="element_projection")(vectors)
    h = ops.concatenate([h, ops.expand_dims(fractions, -1)], axis=-1)
    for i in range(config["n_graph"]):
        h = RoostMessage(heads=config["heads"], hidden=config["hidden"], name=f"message_{i}")(h, fractions, mask)
    pooled = WeightedAttentionPooling(config["elem_fea_len"], heads=config["readout_heads"], hidden=config["hidden"],
                                      name="readout")(h, fractions, mask)
    z = ResidualNetwork(widths(config["trunk"]), config["trunk_out"], name="trunk")(pooled)
    z = keras.layers.Identity(name="composition_embedding")(ops.relu(z))
    return inputs, z
