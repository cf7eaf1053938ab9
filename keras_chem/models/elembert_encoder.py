"""The elEmBERT encoder, shared by the classifier (`elembert.py`) and masked-token pretraining."""

from __future__ import annotations

from keras_chem.featurizers.tokens import PAD_ID


def build_encoder(config: dict, vocabulary_size: int):
    """Token ids `[B, L]` → contextual embeddings `[B, L, embed_dim]`; padding is masked.

    Post-LN blocks as in the paper (keras-hub `TransformerEncoder`, `normalize_first=False`);
    no positional information unless `positional` (a fixed sinusoidal table, Appendix C).
    """
    import keras
    import keras_hub
    from keras import ops

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    # Reversible so that the masked-token head of pretraining can reuse it as its output layer.
    x = keras_hub.layers.ReversibleEmbedding(vocabulary_size, config["embed_dim"], name="token_embedding")(tokens)
    if config["positional"]:
        x = keras.layers.Add(name="add_positions")([x, keras_hub.layers.SinePositionEncoding(name="positions")(x)])
    padding_mask = ops.not_equal(tokens, PAD_ID)
    for i in range(config["layers"]):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=config["ff_dim"],
            num_heads=config["heads"],
            dropout=config["dropout"],
            layer_norm_epsilon=1e-6,
            normalize_first=False,
            name=f"encoder_{i}",
        )(x, padding_mask=padding_mask)
    return keras.Model(tokens, x, name="elembert_encoder")
