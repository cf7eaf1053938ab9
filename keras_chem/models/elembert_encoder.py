"""The elEmBERT encoder, shared by the classifier (`elembert.py`) and masked-token pretraining."""

from __future__ import annotations

from keras_chem.featurizers.atom_features import FEATURES, VOCABULARY_SIZES
from keras_chem.featurizers.bonds import BOND_KINDS, MAX_BONDS
from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID


def encoder_config(config: dict, preprocessor) -> dict:
    """`config` with `distances`, `atom_features` and `bonds` as the preprocessor settled them (`auto` is decided by
    the inputs it featurized)."""
    settled = {switch: getattr(preprocessor, switch) for switch in ENCODER_SWITCHES}
    if "auto" in settled.values():
        raise ValueError("'auto' depends on the inputs: call preprocessor.settle(input_kind) or featurize before building")
    return {**config, **settled}


ENCODER_INPUT_SHAPES = {"tokens": ((None,), "int32"), "coordinates": ((None, 3), "float32"),
                        "atom_features": ((None, len(FEATURES)), "int8"), "bonds": ((None, MAX_BONDS, 2), "int16")}
# the encoder's switches and the array each one adds
ENCODER_SWITCHES = {"distances": "coordinates", "atom_features": "atom_features", "bonds": "bonds"}


def encoder_input_names(config: dict) -> tuple[str, ...]:
    """The arrays the encoder reads: `tokens`, `coordinates` with `distances`, `atom_features` and `bonds` with them."""
    return ("tokens",) + tuple(name for switch, name in ENCODER_SWITCHES.items() if config.get(switch))


def encoder_inputs(config: dict) -> dict:
    """The encoder's `keras.Input`s: `tokens [B, L]`, `coordinates [B, L, 3]` (Å) with `distances`,
    `atom_features [B, L, F]` (int8 category ids) and `bonds [B, L, MAX_BONDS, 2]` (int16) with them."""
    import keras

    return {name: keras.Input(ENCODER_INPUT_SHAPES[name][0], dtype=ENCODER_INPUT_SHAPES[name][1], name=name)
            for name in encoder_input_names(config)}


def build_encoder(config: dict, vocabulary_size: int):
    """Token ids `[B, L]` (and atom coordinates) → contextual embeddings `[B, L, embed_dim]`; padding is masked.

    Post-LN blocks as in the paper (keras-hub `TransformerEncoder`, `normalize_first=False`);
    no positional information unless `positional` (a fixed sinusoidal table, Appendix C). With
    `atom_features`, each atom's RDKit chemistry (`featurizers/atom_features.py`) adds to its token embedding. With
    `distances`, every attention score between two atoms gets a learned bias from their distance
    in the 3-D structure (`layers/distance_attention.py`), shared by the blocks; with `bonds`, also one from
    the molecular graph: bonds between them and their kind (`layers/bond_bias.py`).
    """
    import keras
    import keras_hub
    from keras import ops

    from keras_chem.layers.atom_feature_embedding import AtomFeatureEmbedding
    from keras_chem.layers.bond_bias import BondPathBias
    from keras_chem.layers.distance_attention import BiasedTransformerEncoder, PairDistanceBias

    inputs = encoder_inputs(config)
    tokens = inputs["tokens"]
    # Reversible so that the masked-token head of pretraining can reuse it as its output layer.
    x = keras_hub.layers.ReversibleEmbedding(vocabulary_size, config["embed_dim"], name="token_embedding")(tokens)
    if config.get("atom_features"):
        chemistry = AtomFeatureEmbedding(VOCABULARY_SIZES, config["embed_dim"], name="atom_feature_embedding")(inputs["atom_features"])
        x = keras.layers.Add(name="add_atom_features")([x, chemistry])
    if config["positional"]:
        x = keras.layers.Add(name="add_positions")([x, keras_hub.layers.SinePositionEncoding(name="positions")(x)])
    padding_mask = ops.not_equal(tokens, PAD_ID)
    atoms = ops.logical_and(padding_mask, ops.logical_and(ops.not_equal(tokens, CLS_ID), ops.not_equal(tokens, SEP_ID)))
    biases = []
    if config.get("distances"):
        biases.append(PairDistanceBias(config["heads"], name="distance_bias")(inputs["coordinates"], atoms))
    if config.get("bonds"):
        biases.append(BondPathBias(config["heads"], BOND_KINDS, name="bond_bias")(inputs["bonds"], atoms))
    bias = keras.layers.Add(name="pair_bias")(biases) if len(biases) > 1 else (biases[0] if biases else None)
    for i in range(config["layers"]):
        options = dict(intermediate_dim=config["ff_dim"], num_heads=config["heads"], dropout=config["dropout"], layer_norm_epsilon=1e-6,
                       name=f"encoder_{i}")
        if bias is not None:
            x = BiasedTransformerEncoder(**options)(x, bias, padding_mask)
        else:
            x = keras_hub.layers.TransformerEncoder(normalize_first=False, **options)(x, padding_mask=padding_mask)
    return keras.Model(inputs, x, name="elembert_encoder")
